"""Bambu Lab printers in LAN mode: status pushed over MQTT-over-TLS, commands on the same
broker, files by implicit-TLS FTPS (printer-protocols.md §4).

The printer's certificate is pinned on first use (README, "Bambu Lab printers"): Bambu's CA
is private and a simulator's is self-signed, so instead of a CA check the driver requires the
certificate to name the printer's serial and to stay the same certificate once seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import ftplib
import functools
import hashlib
import random
import socket
import ssl
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import aiomqtt
import httpx
import orjson

from printers.drivers.bambu_connection import (
    BUSY_STATES,
    DEV_MODE_OFF,
    KEEPALIVE,
    MAX_PACKET,
    UNSIGNED_REFUSED,
    CertificateRefused,
    card_name,
    certificate_name,
    drop,
    parse_address,
    signature_required,
    tls_context,
    upload_error,
)
from printers.drivers.bambu_ftps import ImplicitFTPS, ftps_upload
from printers.drivers.bambu_status import firmware_from_version, merge, status_from_report
from printers.drivers.base import (
    Capability,
    DriverAuthError,
    DriverConfig,
    DriverError,
    PrinterBusy,
    PrintOptions,
    ProbeResult,
    ProgressCallback,
    PushDriver,
)
from printers.drivers.rest import check_target, format_temp
from printers.state import PrinterStatus


class BambuDriver(PushDriver):
    protocol: ClassVar[str] = "bambu"
    label: ClassVar[str] = "Bambu Lab (LAN)"
    # The LAN protocol has no emergency stop (§4.2): the card offers Stop (cancel) instead.
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.PAUSE,
            Capability.RESUME,
            Capability.CANCEL,
            Capability.TEMPERATURE,
            Capability.LIGHT,
        }
    )
    # Silence this long makes the driver ask the printer something it answers: a full report
    # (pushall) ...
    silence: float = 10.0
    # ... but not more often than this (P1P firmware lags for minutes after frequent pushalls);
    # in between, its version (cheap). No answer within the reply timeout: the printer is gone,
    # whatever MQTT's keepalive (60 s, then 60 s more) would say.
    pushall_every: float = 300.0

    def __init__(self, config: DriverConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config, client)
        self.host, self.port, self.ftps_port = parse_address(config.base_url)
        self.serial = config.serial.strip()
        self.pin = config.certificate_pin.strip().lower()
        timeout = client.timeout
        # The caller's budget: the poller's timeout, or the web's shorter one for a click.
        self.connect_timeout = float(timeout.connect or 5.0)
        self.reply_timeout = float(timeout.read or 5.0)
        self.malformed = 0  # reports that were not JSON objects (ignored)
        self._sequence = random.randrange(10_000, 10_000_000)
        self._live: aiomqtt.Client | None = None  # the watch's connection, when one is open
        # sequence_id -> (command, its reply, sent on the watch's connection)
        self._waiting: dict[str, tuple[str, asyncio.Future[dict[str, Any]], bool]] = {}
        self._report: dict[str, Any] = {}  # the merged `print` object
        self._firmware = ""
        self._refused: DriverError | None = None  # why the last TLS handshake was refused
        self._pin_seen = ""  # the certificate the last handshake presented

    @property
    def report_topic(self) -> str:
        return f"device/{self.serial}/report"

    @property
    def request_topic(self) -> str:
        return f"device/{self.serial}/request"

    # -- connection ---------------------------------------------------------------------------

    def _check_certificate(self, der: bytes) -> None:
        digest = hashlib.sha256(der).hexdigest()
        name = certificate_name(der)
        if self.serial and name and name != self.serial:
            self._refused = DriverError(
                f"The printer at {self.host} presents a certificate for serial {name}, not {self.serial}: "
                "check the serial number",
                permanent=True,
            )
        elif self.pin and digest != self.pin:
            self._refused = DriverError(
                f"The printer's certificate changed (SHA-256 now {digest[:16]}…, pinned {self.pin[:16]}…); "
                "if you replaced the printer, clear its pinned certificate on its page",
                permanent=True,
            )
        else:
            self._pin_seen = digest
            return
        raise CertificateRefused(self._refused.message)

    def _mqtt_client(self) -> aiomqtt.Client:
        if not self.serial:
            raise DriverError("No serial number set for this Bambu printer", permanent=True)
        client = aiomqtt.Client(
            self.host,
            self.port,
            username="bblp",
            password=self.config.api_key,
            identifier=f"printfarm-{uuid.uuid4().hex[:12]}",
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=True,
            keepalive=KEEPALIVE,
            timeout=self.connect_timeout,
            tls_context=tls_context(),
            tls_insecure=True,
            max_queued_incoming_messages=1000,
        )
        # paho-mqtt 2.x internals, checked against 2.2: the handshake hook pins before CONNECT
        # is sent, the receive hook refuses an oversized packet before reading it.
        paho: Any = client._client  # noqa: SLF001
        paho.connect_timeout = self.connect_timeout
        wrap, receive = paho._ssl_wrap_socket, paho._sock_recv  # noqa: SLF001

        def wrap_and_check(sock: socket.socket) -> ssl.SSLSocket:
            tls = wrap(sock)
            try:
                self._check_certificate(tls.getpeercert(binary_form=True) or b"")
            except BaseException:
                tls.close()
                raise
            return tls

        def bounded_receive(size: int) -> bytes:
            if paho._in_packet["remaining_length"] > MAX_PACKET:  # noqa: SLF001
                self._refused = DriverError(
                    f"The printer sent a message of over {MAX_PACKET // 1024} KB; dropped the connection"
                )
                raise ConnectionAbortedError(self._refused.message)
            return receive(size)  # type: ignore[no-any-return]

        paho._ssl_wrap_socket, paho._sock_recv = wrap_and_check, bounded_receive  # noqa: SLF001
        return client

    @contextlib.asynccontextmanager
    async def _connected(self) -> AsyncIterator[aiomqtt.Client]:
        """An MQTT session subscribed to the report topic; DriverError when it can't be had."""
        client = self._mqtt_client()
        where = f"{self.host}:{self.port}"
        self._refused = None
        try:
            async with asyncio.timeout(self.connect_timeout + 1):
                await client.__aenter__()
        except aiomqtt.MqttCodeError as exc:
            drop(client)
            code = int(getattr(exc.rc, "value", exc.rc) or 0)
            if code in {4, 5, 134, 135}:  # bad user name or password / not authorised
                raise DriverAuthError(
                    "The printer refused the LAN access code (wrong code? it is on the printer's screen, "
                    "Settings → Network)"
                ) from None
            if code in {3, 136}:  # server unavailable: the firmware's few client slots are taken
                raise DriverError(
                    f"The printer at {where} takes no more connections: it serves only a few clients "
                    "at once (close Bambu Studio, Bambu Handy or another tool connected to it)"
                ) from ConnectionError()
            raise DriverError(f"The printer at {where} refused the connection: {exc}") from ConnectionError()
        except (aiomqtt.MqttError, TimeoutError) as exc:
            drop(client)
            if self._refused is not None:
                raise self._refused from None
            if isinstance(exc, TimeoutError) or "timed out" in str(exc).lower():
                raise DriverError(
                    f"No MQTT answer from {where} within {self.connect_timeout:g} s"
                ) from TimeoutError()
            raise DriverError(f"Could not connect to {where}: {exc}") from ConnectionError()
        try:
            if not self.pin and self._pin_seen:
                if self.config.on_certificate is not None:
                    await self.config.on_certificate(self._pin_seen)
                self.pin = self._pin_seen  # only once stored: a failed write is tried again
            await client.subscribe(self.report_topic)
            yield client
        except aiomqtt.MqttError as exc:
            raise self._lost(exc) from (None if self._refused else ConnectionError())
        finally:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError, OSError):
                async with asyncio.timeout(1.0):
                    await client.__aexit__(None, None, None)
            drop(client)

    def _lost(self, exc: BaseException) -> DriverError:
        """A connection that failed after it was set up; offline unless the driver refused it
        (an oversized message: the printer answered, badly)."""
        if self._refused is not None:
            return self._refused
        return DriverError(f"Lost the connection to the printer: {exc}")

    def _next_id(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    async def _publish(self, client: aiomqtt.Client, kind: str, body: Mapping[str, Any]) -> None:
        await client.publish(self.request_topic, orjson.dumps({kind: body}), qos=1)

    async def _ask_for_everything(self, client: aiomqtt.Client) -> None:
        await self._publish(client, "info", {"sequence_id": self._next_id(), "command": "get_version"})
        await self._publish(client, "pushing", {"sequence_id": self._next_id(), "command": "pushall"})

    def _take(self, payload: object) -> bool:
        """One report into the merged state; True when it may have changed the status."""
        try:
            data = orjson.loads(payload if isinstance(payload, bytes | str) else b"")
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            self.malformed += 1
            return False
        changed = False
        for kind, body in data.items():
            if not isinstance(body, dict):
                continue
            waiter = self._waiting.get(str(body.get("sequence_id")))
            if waiter is not None and waiter[0] == body.get("command") and not waiter[1].done():
                waiter[1].set_result(body)
            if kind == "print" and body.get("command") == "push_status":
                merge(self._report, body)
                changed = True
            elif kind == "info" and body.get("command") == "get_version":
                self._firmware = firmware_from_version(body) or self._firmware
                changed = True
        return changed

    # -- status ---------------------------------------------------------------------------

    async def watch(self) -> AsyncGenerator[PrinterStatus, None]:
        loop = asyncio.get_running_loop()
        self._report = {}
        async with self._connected() as client:
            await self._ask_for_everything(client)
            heard = pushed = asked_at = loop.time()  # the last readable report; pushall; question
            asked = False  # a question sent because the printer went quiet, not answered yet
            last: PrinterStatus | None = None
            yielded = 0.0  # unchanged readings are passed on this often too: they say "still there"
            unreadable = self.malformed  # malformed reports before the last readable one
            messages = aiter(client.messages)
            self._live = client
            try:
                while True:
                    if last is None:
                        wait = heard + self.reply_timeout  # the answer to the first pushall
                    else:
                        wait = asked_at + self.reply_timeout if asked else heard + self.silence
                    try:
                        async with asyncio.timeout_at(wait):
                            message = await anext(messages)
                    except TimeoutError:
                        garbled = self.malformed - unreadable
                        if last is None or asked or garbled:
                            raise self._silent(loop.time() - heard, garbled) from TimeoutError()
                        # P1 firmware is quiet while nothing changes: ask, and its answer says
                        # the reading still holds (it is passed on again once heard).
                        if loop.time() - pushed >= self.pushall_every:
                            kind, command, pushed = "pushing", "pushall", loop.time()
                        else:
                            kind, command = "info", "get_version"
                        question = {"sequence_id": self._next_id(), "command": command}
                        await self._publish(client, kind, question)
                        asked, asked_at = True, loop.time()
                        continue
                    malformed = self.malformed
                    changed = self._take(message.payload)
                    if self.malformed == malformed:
                        heard, asked, unreadable = loop.time(), False, malformed
                    if not changed or "gcode_state" not in self._report:
                        continue  # a reply, or deltas before the first full report
                    status = status_from_report(self._report, firmware=self._firmware)
                    if status != last or loop.time() - yielded >= self.silence:
                        last, yielded = status, loop.time()
                        yield status
            finally:
                self._live = None
                for _, future, live in self._waiting.values():
                    if live:
                        future.cancel()

    def _silent(self, seconds: float, garbled: int) -> DriverError:
        if garbled:  # the printer talks, but not JSON
            return DriverError(
                f"The printer's reports are unreadable: {garbled} malformed, "
                f"none readable for {seconds:.0f} s"
            )
        return DriverError(f"No report from the printer for {seconds:.0f} s: it stopped pushing")

    async def probe(self) -> ProbeResult:
        stream = self.watch()
        first: PrinterStatus | None = None
        try:
            async with asyncio.timeout(self.reply_timeout):
                async for status in stream:
                    first = status
                    if status.firmware:
                        break
        except TimeoutError:
            if first is None:
                raise DriverError(f"No report from the printer within {self.reply_timeout:g} s") from None
        finally:
            await stream.aclose()
        assert first is not None
        return ProbeResult(
            firmware=first.firmware or "Bambu Lab (firmware version not reported)", status=first
        )

    # -- commands -------------------------------------------------------------------------

    async def _request(
        self, kind: str, body: Mapping[str, Any], *, what: str, starts: bool = False
    ) -> dict[str, Any]:
        """Publish one command and wait for the reply carrying its sequence_id. On the watch's
        connection when one is open (the broker takes few clients), else on one of its own."""
        sequence = self._next_id()
        command = str(body["command"])
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[sequence] = (command, future, self._live is not None)
        try:
            if self._live is not None:
                await self._publish(self._live, kind, {"sequence_id": sequence, **body})
                reply = await self._reply(future, what)
            else:
                async with self._connected() as client:
                    await self._publish(client, kind, {"sequence_id": sequence, **body})
                    reader = asyncio.ensure_future(self._read_until(client, future))
                    try:
                        reply = await self._reply(future, what)
                    finally:
                        reader.cancel()
                        with contextlib.suppress(BaseException):
                            await reader
        except aiomqtt.MqttError as exc:
            raise self._lost(exc) from (None if self._refused else ConnectionError())
        finally:
            self._waiting.pop(sequence, None)
        self._check_reply(reply, what, starts=starts)
        return reply

    async def _read_until(self, client: aiomqtt.Client, future: asyncio.Future[dict[str, Any]]) -> None:
        async for message in client.messages:
            self._take(message.payload)
            if future.done():
                return

    async def _reply(self, future: asyncio.Future[dict[str, Any]], what: str) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.reply_timeout):
                return await future
        except TimeoutError:
            if signature_required(self._report):
                raise DriverError(DEV_MODE_OFF) from None
            raise DriverError(f"The printer did not answer {what} within {self.reply_timeout:g} s") from None
        except asyncio.CancelledError:
            if future.cancelled():  # the watch's connection closed under us
                raise DriverError(f"Lost the connection to the printer while sending {what}") from None
            raise

    def _check_reply(self, reply: Mapping[str, Any], what: str, *, starts: bool = False) -> None:
        result = str(reply.get("result") or "").lower()
        if result == "success" or (not result and not reply.get("err_code")):
            return
        reason = str(reply.get("reason") or reply.get("err_code") or "no reason given")
        if reply.get("err_code") in {UNSIGNED_REFUSED, str(UNSIGNED_REFUSED)} or "verif" in reason.lower():
            raise DriverError(DEV_MODE_OFF)
        if reply.get("command") == "gcode_line":
            # X1/P1 firmware refuses G-code while a print runs.
            raise PrinterBusy(f"The printer refused {what} ({reason}); it takes no G-code while printing")
        if starts and "busy" not in reason.lower():
            # A missing file or plate: starting it again won't help.
            raise DriverError(f"The printer refused {what}: {reason}", permanent=True)
        raise PrinterBusy(f"The printer refused {what}: {reason}")

    async def _print_command(self, command: str, what: str) -> None:
        await self._request("print", {"command": command, "param": ""}, what=what)

    async def pause(self) -> None:
        await self._print_command("pause", "the pause")

    async def resume(self) -> None:
        await self._print_command("resume", "the resume")

    async def cancel(self) -> None:
        await self._print_command("stop", "the stop")

    async def emergency_stop(self) -> None:
        raise DriverError(
            "Bambu Lab printers have no emergency stop over the LAN; use Cancel, or the printer's screen",
            permanent=True,
        )

    async def set_temperature(self, *, hotend: float | None = None, bed: float | None = None) -> None:
        lines = ""
        if hotend is not None:
            lines += f"M104 S{format_temp(check_target('Hotend', hotend))}\n"
        if bed is not None:
            lines += f"M140 S{format_temp(check_target('Bed', bed))}\n"
        if lines:
            await self._request(
                "print", {"command": "gcode_line", "param": lines}, what="the temperature change"
            )

    async def set_light(self, *, on: bool) -> None:
        await self._request(
            "system",
            {
                "command": "ledctrl",
                "led_node": "chamber_light",
                "led_mode": "on" if on else "off",
                "led_on_time": 500,
                "led_off_time": 500,
                "loop_times": 0,
                "interval_time": 0,
            },
            what="the light switch",
        )

    # -- files ----------------------------------------------------------------------------

    async def upload(
        self,
        path: Path,
        *,
        remote_name: str,
        start: bool = False,
        progress: ProgressCallback | None = None,
        options: PrintOptions | None = None,
    ) -> None:
        name = card_name(remote_name)
        self._refused = None
        stall = max(self.reply_timeout, 10.0)  # seconds without a byte moving: a stalled transfer
        ftp = ImplicitFTPS(context=tls_context(), server_hostname=self.serial or self.host, timeout=stall)
        call = functools.partial(
            ftps_upload,
            ftp=ftp,
            host=self.host,
            port=self.ftps_port,
            password=self.config.api_key,
            path=path,
            remote_name=name,
            progress=progress,
            check_certificate=self._check_certificate if self.pin or self.serial else None,
        )
        try:
            await asyncio.to_thread(call)
        except asyncio.CancelledError:
            ftp.kill()  # the thread's next socket call fails at once instead of running on
            raise
        except (OSError, EOFError, ftplib.Error) as exc:
            raise upload_error(exc, name, self._refused) from exc
        if start:
            await self.start(name, options)

    async def start(self, remote_name: str, options: PrintOptions | None = None) -> None:
        name = card_name(remote_name)
        if self._live is not None and str(self._report.get("gcode_state")).upper() in BUSY_STATES:
            raise PrinterBusy(f"The printer is busy ({self._report['gcode_state']}); {name} was not started")
        if name.lower().endswith(".3mf"):
            plate = options.plate if options is not None and options.plate else 1
            mapping = list(options.trays) if options is not None else []
            body: dict[str, Any] = {
                "command": "project_file",
                "param": f"Metadata/plate_{plate}.gcode",
                "url": f"file:///sdcard/{name}",
                # The status names the print by this: the file's name, so a job knows its print.
                "subtask_name": name,
                "md5": "",
                "project_id": "0",
                "profile_id": "0",
                # Unique per start: the same ids again are taken for a continuation of the last print.
                "task_id": str(random.randrange(1, 2**31)),
                "subtask_id": str(random.randrange(1, 2**31)),
                "bed_type": "auto",
                "timelapse": False,
                "bed_leveling": True,
                "flow_cali": True,
                "vibration_cali": True,
                "layer_inspect": True,
                "use_ams": bool(mapping) and any(t != 254 and t >= 0 for t in mapping),
                "ams_mapping": mapping or [0],
            }
        else:
            body = {"command": "gcode_file", "param": f"/sdcard/{name}"}
        await self._request("print", body, what=f"the start of {name}", starts=True)
