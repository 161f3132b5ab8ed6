"""G-code files: list, metadata, streamed upload, delete."""

from __future__ import annotations

from dataclasses import asdict

from django.http import Http404, HttpRequest
from ninja import Query, Router, Status
from pydantic import Field

from jobs import library
from jobs.models import GcodeFile
from jobs.presenters import file_facts
from jobs.uploads import upload_receive
from printfarm.accounts.models import Role
from printfarm.api import schemas
from printfarm.api.auth import TokenAuth, need

router = Router(tags=["files"])
ERRORS = schemas.ERRORS
SORTS = {"new": "-uploaded_at", "name": "name", "size": "-size", "time": "estimated_seconds"}


def file_out(file: GcodeFile) -> dict:
    data = {name: getattr(file, name) for name in schemas.FileOut.model_fields if hasattr(file, name)}
    facts = file_facts(file)  # the slots and plates as the pages show them
    data["filaments"] = facts.filaments
    data["plates"] = [{**asdict(p), "thumbnail_url": p.thumbnail_url or None} for p in facts.plates]
    data["thumbnail_url"] = facts.thumbnail_url or None
    return data


class FileQuery(schemas.Schema):
    q: str = Field("", max_length=100, pattern=r"^[^\x00]*$", description="part of the name")
    sort: str = Field("new", pattern="^(new|name|size|time)$")
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=1_000_000_000)


@router.get("/files", response={200: schemas.FilePage, **ERRORS})
def file_list(request: HttpRequest, query: Query[FileQuery]):
    files = GcodeFile.objects.present().search(query.q.strip()).order_by(SORTS[query.sort], "pk")
    page = files[query.offset : query.offset + query.limit]
    return {"count": files.count(), "items": [file_out(f) for f in page]}


@router.get("/files/{file_id}", response={200: schemas.FileOut, **ERRORS})
def file_detail(request: HttpRequest, file_id: int):
    file = GcodeFile.objects.present().filter(pk=file_id).first()
    if file is None:
        raise Http404(f"No file {file_id}.")
    return file_out(file)


@router.post(
    "/files",
    auth=[TokenAuth()],  # a session would need the body parsed for its CSRF check first
    response={**ERRORS, **dict.fromkeys((201, 207, 400, 413), schemas.UploadOut)},
    summary="Upload G-code (operator)",
    description=(
        "`multipart/form-data` with one or more `file` parts; each is streamed to disk and "
        "hashed. Accepted: " + ", ".join(library.EXTENSIONS) + ". The same content under the same "
        "name again reuses that entry (its id is in `reused`); under a new name it is a new entry "
        "sharing the stored bytes. Names with a folder (/ or \\), control characters or over 255 "
        "characters are refused. 201: every file kept; 207: some "
        "kept, the others refused (`errors`); 400: none kept; 413: none kept, one was over the "
        "size limit. The web library and the slicer endpoint answer the same files the same way."
    ),
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {"type": "array", "items": {"type": "string", "format": "binary"}}
                        },
                        "required": ["file"],
                    }
                }
            },
            "required": True,
        }
    },
)
async def file_upload(request: HttpRequest):
    actor = need(request, Role.OPERATOR)
    upload = await upload_receive(request, by=actor.user, via=actor.via)
    body = {
        "stored": [file_out(s.file) for s in upload.kept if s.created],
        "reused": [s.file.pk for s in upload.kept if not s.created],
        "errors": list(upload.errors),
    }
    return Status(upload.status, body)


@router.delete("/files/{file_id}", response={204: None, **ERRORS}, summary="Delete a file (operator)")
def file_delete(request: HttpRequest, file_id: int):
    actor = need(request, Role.OPERATOR)
    file = GcodeFile.objects.present().filter(pk=file_id).first()
    if file is None:
        raise Http404(f"No file {file_id}.")
    library.delete(file, by=actor.user, via=actor.via)
    return Status(204, None)
