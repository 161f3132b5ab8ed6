"""The API's request and response shapes (these are what /api/v1/openapi.json documents).

Choices and bounds come from the models and forms that enforce them (the forms validate every
write after these shapes), so the schema can't promise what the web refuses or refuse what it
takes.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from django.contrib.auth import get_user_model
from ninja import Schema
from pydantic import BaseModel, Field, StrictBool, StrictInt, create_model, model_validator
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from jobs.forms import QueueForm
from jobs.matching import ReasonCode
from jobs.models import Job
from printers.forms import PrinterForm
from printers.models import Printer
from printers.state import State
from printfarm.accounts.models import Role

# Literal[("a", "b")] is Literal["a", "b"]: each set of choices becomes the schema's enum.
ProtocolCode = Literal[tuple(Printer.Protocol.values)]
ActionCode = Literal[tuple(Job.Action.values)]
RoleCode = Literal[tuple(Role.values)]
_PRINTER = PrinterForm.base_fields
_QUEUE = QueueForm.base_fields
_USER = get_user_model()._meta


class Error(Schema):
    """Every error: a stable code, a sentence for people, and per-field messages if any."""

    code: str = Field(examples=["not_found"])
    detail: str
    fields: dict[str, list[str]] = {}


# The error responses every operation documents.
ERRORS = {400: Error, 401: Error, 403: Error, 404: Error, 409: Error, 422: Error, 500: Error, 503: Error}


class Body(BaseModel):
    """A request body: a JSON object. An array, a string or null is a 422, not an empty change.

    A plain pydantic model: ninja's Schema reads its input through attribute access (for ORM
    objects), so `[]` or `"x"` would pass as an object with every field absent.
    """

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise PydanticCustomError("object_expected", "The body must be a JSON object.")
        return value


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def unchanged_if_absent(**constraints: Any) -> Any:
    """A PATCH field that may be left out (it keeps its value) but not sent as null (422).

    The None default only marks "absent" (the views read `exclude_unset`); it is no value
    a client may send, so the schema shows no default.
    """
    return Field(None, json_schema_extra=_no_default, **constraints)


class TrayOut(Schema):
    id: int = Field(description="AMS unit × 4 + slot (0-based); 254 is the external spool", examples=[1])
    type: str = Field(examples=["PETG"], description='"" for an empty tray')
    colour: str = Field(examples=["#FF8000"], description='"#RRGGBB", or "" when not known')
    remaining: int | None = Field(description="percent left, where the AMS knows it")
    active: bool = Field(description="feeding the print now")


class PrinterStatusOut(Schema):
    state: str
    message: str
    hotend_actual: float | None
    hotend_target: float | None
    bed_actual: float | None
    bed_target: float | None
    progress: float | None
    file: str
    elapsed: int | None
    remaining: int | None
    firmware: str
    chamber_actual: float | None = Field(description="°C, where the printer has a chamber sensor")
    layer: int | None = Field(description="the layer printing now, where the printer says")
    layer_count: int | None
    trays: list[TrayOut] = Field(description="AMS trays and external spool (Bambu); [] for others")
    light: bool | None = Field(description="chamber light on, where the printer reports it (Bambu)")
    bed_ready: bool = Field(description="PrusaLink: “Set Ready” pressed on the printer (its bed is clear)")
    since: dt.datetime | None
    last_seen: dt.datetime | None


class CameraOut(Schema):
    """The printer's camera as this server relays it: the camera's own address and password are
    write-only (camera_snapshot_url / camera_stream_url) and never sent back."""

    snapshot: bool = Field(description="a snapshot can be fetched from snapshot_url")
    stream: bool = Field(description="an MJPEG stream can be watched at stream_url")
    source: Literal["url", "printer", ""] = Field(
        description='"url": snapshot/stream URLs are stored; "printer": the printer\'s own camera '
        '(Bambu Lab P1/A1 series); "": no camera'
    )
    on_card: bool = Field(description="the dashboard card shows the snapshot")
    snapshot_url: str | None = Field(
        examples=["/api/v1/printers/7/camera/snapshot"],
        description="this server's relay of the camera (a path; same authentication as the API); "
        "a placeholder image says why when the camera is down",
    )
    stream_url: str | None = Field(examples=["/api/v1/printers/7/camera/stream"])
    note: str = Field(description="why a camera the printer has is not shown, else blank")


class PrinterOut(Schema):
    id: int
    name: str
    protocol: str
    base_url: str
    enabled: bool
    tags: list[str]
    location: str
    model: str = Field(examples=["Bambu Lab P1S"], description="as slicers name it; blank: any")
    nozzle_diameter: float | None
    build_volume: list[int]
    material: str
    auto_clear: bool
    bed_clear: bool
    has_api_key: bool = Field(description="the key itself is never sent back")
    serial: str = Field(description="Bambu Lab: the printer's serial number; blank for others")
    username: str = Field(description="PrusaLink: the digest user name; blank for others")
    certificate_pin: str = Field(
        description="Bambu Lab: SHA-256 of the TLS certificate pinned on first use; blank until then"
    )
    commands: list[str] = Field(
        examples=[["pause", "cancel", "emergency-stop"]],
        description="what POST /printers/{id}/commands/{name} takes now: the commands its state "
        "allows and its protocol carries (the card's buttons)",
    )
    camera: CameraOut
    status: PrinterStatusOut


class PrinterPage(Schema):
    count: int
    items: list[PrinterOut]


class PrinterIn(Body):
    name: str = Field(min_length=1, max_length=_PRINTER["name"].max_length)
    protocol: ProtocolCode
    base_url: str = Field(
        min_length=1, max_length=_PRINTER["base_url"].max_length, examples=["http://192.168.1.50:7125"]
    )
    api_key: str = Field(
        "",
        max_length=_PRINTER["api_key"].max_length,
        description="write-only (Bambu Lab: the LAN access code)",
    )
    serial: str = Field("", max_length=_PRINTER["serial"].max_length, description="Bambu Lab: required")
    username: str = Field(
        "",
        max_length=_PRINTER["username"].max_length,
        description="PrusaLink: “maker” signs in with api_key as the digest password; "
        "blank sends it as X-Api-Key",
    )
    enabled: StrictBool = True
    tags: list[str] = []
    location: str = ""
    model: str = Field(
        "",
        max_length=_PRINTER["model"].max_length,
        description="as slicers name it (Bambu Lab P1S); files sliced for another model are not sent",
    )
    nozzle_diameter: Decimal = Decimal("0.40")
    build_x: StrictInt = 220
    build_y: StrictInt = 220
    build_z: StrictInt = 250
    material: str = ""
    auto_clear: StrictBool = False
    camera_snapshot_url: str = Field(
        "",
        max_length=_PRINTER["camera_snapshot_url"].max_length,
        examples=["http://192.168.1.50/webcam/?action=snapshot"],
        description="write-only (it may carry a user name and password): an http(s) URL of a JPEG/PNG",
    )
    camera_stream_url: str = Field(
        "",
        max_length=_PRINTER["camera_stream_url"].max_length,
        examples=["http://192.168.1.50/webcam/?action=stream"],
        description="write-only: an MJPEG stream's http(s) URL",
    )
    camera_on_card: StrictBool = True


class PrinterPatch(Body):
    """Send only what changes: a field left out keeps its value. null clears the fields that
    may be empty (tags, location, material, api_key, the camera URLs); for the others it is
    refused (422)."""

    name: str = unchanged_if_absent(max_length=_PRINTER["name"].max_length)
    protocol: ProtocolCode = unchanged_if_absent()
    base_url: str = unchanged_if_absent(max_length=_PRINTER["base_url"].max_length)
    api_key: str | None = Field(
        None, max_length=_PRINTER["api_key"].max_length, description='write-only; "" or null removes it'
    )
    serial: str = unchanged_if_absent(max_length=_PRINTER["serial"].max_length)
    username: str = unchanged_if_absent(max_length=_PRINTER["username"].max_length)
    certificate_pin: None = Field(
        None, description="null forgets the pinned certificate (a replaced printer); nothing else is taken"
    )
    enabled: StrictBool = unchanged_if_absent()
    tags: list[str] | None = Field(None, description="replaces all the tags; [] or null removes them")
    location: str | None = Field(None, description='"" or null clears it')
    model: str | None = Field(
        None, max_length=_PRINTER["model"].max_length, description='"" or null clears it'
    )
    nozzle_diameter: Decimal = unchanged_if_absent()
    build_x: StrictInt = unchanged_if_absent()
    build_y: StrictInt = unchanged_if_absent()
    build_z: StrictInt = unchanged_if_absent()
    material: str | None = Field(None, description='the loaded material; "" or null clears it')
    auto_clear: StrictBool = unchanged_if_absent()
    camera_snapshot_url: str | None = Field(
        None,
        max_length=_PRINTER["camera_snapshot_url"].max_length,
        description='write-only; "" or null removes it',
    )
    camera_stream_url: str | None = Field(
        None,
        max_length=_PRINTER["camera_stream_url"].max_length,
        description='write-only; "" or null removes it',
    )
    camera_on_card: StrictBool = unchanged_if_absent()


# Printers per state: one field per printers.state.State, as /status sends them.
StateCount = create_model("StateCount", __base__=Schema, **{state.value: (int, ...) for state in State})


class FarmPrinterStatus(PrinterStatusOut):
    id: int
    name: str


class PollerShardOut(Schema):
    shard: str = Field(description="as `poll_printers --shard` takes it: K/N", examples=["0/1"])
    ok: bool
    host: str
    pid: int | None
    started_at: dt.datetime | None
    stopped_at: dt.datetime | None = Field(description="its last heartbeat, once it has stopped")
    stopped_seconds: int | None
    clean_stop: bool = Field(description="it shut down, rather than died or lost the database")
    printers: int | None = Field(description="enabled printers it owns; counted when others still run")


class PollerOut(Schema):
    """Is live status being updated? Each poller shard's heartbeat counts for its printers
    (printer id % N == K)."""

    ok: bool
    never_reported: bool = Field(description="no poller has ever written a heartbeat")
    stopped_seconds: int | None = Field(description="since the most recent shard stopped")
    shards: list[PollerShardOut]


class FarmStatus(Schema):
    printers: int
    by_state: StateCount
    status: list[FarmPrinterStatus]
    poller: PollerOut


class CommandOut(Schema):
    ok: bool
    message: str


class FilamentOut(Schema):
    slot: int = Field(description="1-based, as the slicer numbers its extruders or AMS slots")
    type: str = Field(examples=["PLA"], description='"" when the file does not say')
    colour: str = Field(examples=["#FF8000"], description='"#RRGGBB", or "" when the file names no colour')
    grams: float | None
    mm: float | None


class PlateOut(Schema):
    index: int = Field(description="1-based, as in the 3MF's Metadata/plate_<index>.gcode")
    name: str
    estimated_seconds: int | None
    filament_g: float | None
    object_height: float | None
    filaments: list[FilamentOut]
    thumbnail_url: str | None


class FileOut(Schema):
    id: int
    name: str
    folder: str = Field(description='the folder the slicer uploaded to; "" for the top')
    size: int
    sha256: str
    uploaded_at: dt.datetime
    slicer: str
    slicer_version: str
    estimated_seconds: int | None
    filament_mm: float | None
    filament_g: float | None
    filament_type: str
    layer_height: float | None
    nozzle_diameter: float | None
    first_layer_hotend: float | None
    first_layer_bed: float | None
    object_height: float | None
    printer_model: str = Field(examples=["Bambu Lab X1 Carbon"], description="the printer it was sliced for")
    filaments: list[FilamentOut] = Field(
        description="one per filament slot the print uses; for files read before slots were, "
        "the materials of `filament_type` (with the totals when there is one)"
    )
    plates: list[PlateOut] = Field(description="a 3MF's plates, one job each; empty for plain G-code")
    thumbnail_url: str | None


class FilePage(Schema):
    count: int
    items: list[FileOut]


class UploadOut(Schema):
    stored: list[FileOut]
    reused: list[StrictInt] = Field(description="ids of files whose content was already stored")
    errors: list[str]


class JobEventOut(Schema):
    at: dt.datetime
    from_state: str
    to_state: str
    by: str
    reason: str


# Why a job waits: TypedDicts, not models. A page holds a row per job and printer (50 jobs on
# 200 printers: 10,000), and pydantic validates a TypedDict several times faster than a model
# (tried: ninja's Schema took 1.6 s of a 2.7 s page, a BaseModel still about a quarter).
class PrinterRef(TypedDict):
    id: int
    name: str


class WaitReason(TypedDict):
    code: Annotated[ReasonCode, Field(description="a stable identifier of the reason")]
    text: Annotated[str, Field(examples=["busy, 40 min left"], description="as the queue page says it")]


class PrinterWait(TypedDict):
    printer: PrinterRef
    reasons: Annotated[list[WaitReason], Field(description="empty: this printer could take the job now")]


class WaitingOut(TypedDict):
    """Why a queued job waits: the queue page's line and its per-printer reasons."""

    summary: Annotated[str, Field(examples=["2× busy, 40 min left; 1× material PETG loaded, PLA needed"])]
    printers: Annotated[
        list[PrinterWait], Field(description="those that could take it now first, then by name")
    ]


class JobOut(Schema):
    id: int
    file_id: StrictInt
    file_name: str
    plate: int | None = Field(None, description="which plate of a 3MF this job prints; null for G-code")
    state: str
    action: str
    priority: int
    position: int
    printer_id: int | None
    printer_name: str
    target_printer_id: int | None
    required_tags: list[str]
    required_material: str
    required_nozzle: Decimal | None
    transfer_percent: float | None
    attempts: int
    reason: str
    created_at: dt.datetime
    assigned_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    print_seconds: int | None
    filament_mm: float | None
    waiting: WaitingOut | None = Field(description="why it waits, for a queued job; null for the others")


class JobDetail(JobOut):
    events: list[JobEventOut]


class JobPage(Schema):
    count: int
    items: list[JobOut]


class JobIn(Body):
    file_id: StrictInt
    quantity: StrictInt = Field(1, ge=_QUEUE["quantity"].min_value, le=_QUEUE["quantity"].max_value)
    priority: StrictInt = Field(0, ge=_QUEUE["priority"].min_value, le=_QUEUE["priority"].max_value)
    action: ActionCode = Job.Action.PRINT.value
    printer_ids: list[StrictInt] = Field([], description="one job per printer; quantity is then ignored")
    tags: list[str] = []
    material: str = ""
    nozzle: Decimal | None = Field(None, ge=_QUEUE["nozzle"].min_value, le=_QUEUE["nozzle"].max_value)
    plates: list[StrictInt] | None = Field(
        None, description="a 3MF's plates to queue, one job each (per copy); null: all of them"
    )


class JobsCreated(Schema):
    items: list[JobOut]


class ReorderIn(Body):
    order: list[StrictInt] = Field(description="waiting job ids, first runs first")


class UserOut(Schema):
    id: int
    username: str
    email: str
    role: str
    is_active: bool
    last_login: dt.datetime | None


class UserPage(Schema):
    count: int
    items: list[UserOut]


class UserIn(Body):
    username: str = Field(min_length=1, max_length=_USER.get_field("username").max_length)
    email: str = ""
    role: RoleCode = Role.VIEWER.value
    password: str = Field(min_length=1, max_length=_USER.get_field("password").max_length)


class UserPatch(Body):
    """Send only what changes: a field left out keeps its value; null clears the email only."""

    role: RoleCode = unchanged_if_absent()
    is_active: StrictBool = unchanged_if_absent()
    email: str | None = Field(None, description='"" or null clears it')


class BulkIn(Body):
    action: str = Field(
        examples=["pause"],
        description="a printer command (pause, resume, cancel, preheat-pla, cooldown, …), bed-cleared, "
        "or enable / disable (admin)",
    )
    printers: list[StrictInt] = Field(min_length=1, max_length=1000, description="printer ids")


class BulkResultOut(Schema):
    id: int
    name: str = Field(description="blank when no such printer")
    ok: bool
    message: str


class BulkOut(Schema):
    action: str
    ok: int = Field(description="printers where it worked")
    failed: int = Field(description="printers where it was refused or failed")
    results: list[BulkResultOut] = Field(description="one per printer, in the order sent")
