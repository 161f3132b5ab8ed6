"""The implicit-TLS FTPS server of a simulated Bambu printer (its SD card, port 990 on a real one).

TLS from the first byte on the control connection; USER bblp / PASS <access code> (else 530);
PBSZ, PROT P (required before a transfer, as on the printer), TYPE, PASV/EPSV, STOR, SIZE,
LIST/NLST, DELE, PWD/CWD, NOOP, QUIT. Data connections are TLS too; a client may resume the
control session on them (ftplib's `session=self.sock.session`, what ha-bambulab and
bambulabs_api do). After STOR the printer answers 226 once the data connection reaches EOF,
with or without a TLS close_notify: the firmware never waits for one, and clients that skip
`unwrap()` rely on that.

An upload is streamed to a hidden temp name beside its target and renamed only when complete,
so a cut transfer (the reset_upload/stall_upload faults, a client that dies) never leaves a
file the printer would print.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import struct
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from printers.simulator.bambu_mqtt import close
from printers.simulator.files import describe_file

if TYPE_CHECKING:
    from printers.simulator.bambu import BambuDevice

logger = logging.getLogger(__name__)

USERNAME = "bblp"
LINE_LIMIT = 4096
IDLE_TIMEOUT = 300.0  # seconds a control connection may sit silent
DATA_TIMEOUT = 15.0  # seconds to wait for the client's data connection
CHUNK = 64 * 1024
RESET_AFTER = 64 * 1024  # bytes of an upload taken before reset_upload / stall_upload bite
HOLD_CHECK = 0.05
TMP_PREFIX = ".sim-upload-"


class FtpsServer:
    """FTPS for one BambuDevice; the farm owns the listening socket."""

    def __init__(self, device: BambuDevice) -> None:
        self.device = device
        self.connections: set[asyncio.StreamWriter] = set()

    def drop_all(self, drop: object) -> None:
        for writer in list(self.connections):
            drop(writer.transport)  # type: ignore[operator]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        device = self.device
        self.connections.add(writer)
        try:
            if device.fault == "blackhole":
                while device.fault == "blackhole" and not writer.transport.is_closing():
                    if await device.farm.wait_closing(0.25):
                        break
                return
            async with asyncio.timeout(DATA_TIMEOUT):
                await writer.start_tls(device.certificate.ftps_context)
            await _Session(self, reader, writer).run()
        except (
            ConnectionError,
            TimeoutError,
            asyncio.IncompleteReadError,
            ssl.SSLError,
            asyncio.LimitOverrunError,
        ):
            pass
        except Exception:
            logger.exception("%s: FTPS session failed", device.serial)
        finally:
            self.connections.discard(writer)
            await close(writer)


class _Session:
    def __init__(
        self, server: FtpsServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.device = server.device
        self.reader = reader
        self.writer = writer
        self.user = ""
        self.logged_in = False
        self.protected = False
        self.passive: _Passive | None = None

    async def reply(self, line: str) -> None:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()

    async def run(self) -> None:
        await self.reply("220 Service ready for new user.")
        try:
            while True:
                async with asyncio.timeout(IDLE_TIMEOUT):
                    raw = await self.reader.readuntil(b"\n")
                if len(raw) > LINE_LIMIT:
                    return
                verb, _, arg = raw.decode("utf-8", "replace").strip().partition(" ")
                verb = verb.upper()
                if verb == "QUIT":
                    await self.reply("221 Goodbye.")
                    return
                await self.command(verb, arg)
        finally:
            if self.passive is not None:
                self.passive.close()

    async def command(self, verb: str, arg: str) -> None:
        if verb == "USER":
            self.user, self.logged_in = arg, False
            await self.reply("331 User name okay, need password.")
        elif verb == "PASS":
            if self.user == USERNAME and arg == self.device.current_access_code:
                self.logged_in = True
                await self.reply("230 User logged in, proceed.")
            else:
                await self.reply("530 Login incorrect.")
        elif not self.logged_in:
            await self.reply("530 Please login with USER and PASS.")
        elif verb == "PBSZ":
            await self.reply("200 PBSZ=0")
        elif verb == "PROT":
            self.protected = arg.strip().upper() == "P"
            await self.reply(
                "200 Protection level set to P" if self.protected else "536 Only PROT P is supported."
            )
        elif verb == "TYPE":
            await self.reply("200 Type set.")
        elif verb in ("NOOP", "OPTS", "MODE", "STRU"):
            await self.reply("200 OK.")
        elif verb == "SYST":
            await self.reply("215 UNIX Type: L8")
        elif verb == "PWD":
            await self.reply('257 "/" is the current directory.')
        elif verb == "CWD":
            await self.reply("250 Directory changed.")
        elif verb in ("PASV", "EPSV"):
            await self.open_passive(extended=verb == "EPSV")
        elif verb == "SIZE":
            path = self.path(arg)
            if path is not None and path.is_file():
                await self.reply(f"213 {path.stat().st_size}")
            else:
                await self.reply("550 File not found.")
        elif verb == "DELE":
            path = self.path(arg)
            if path is not None and path.is_file():
                self.device.printer.delete_file(path.relative_to(self.root).as_posix())
                await self.reply("250 File deleted.")
            else:
                await self.reply("550 File not found.")
        elif verb == "STOR":
            await self.store(arg)
        elif verb in ("LIST", "NLST"):
            await self.listing(arg, names_only=verb == "NLST")
        else:
            await self.reply("502 Command not implemented.")

    @property
    def root(self) -> Path:
        return self.device.printer.files_dir

    def path(self, arg: str) -> Path | None:
        """The SD-card path a client names; None outside it."""
        parts = [p for p in PurePosixPath(arg.strip()).parts if p not in ("/", "")]
        if not parts or any(p in (".", "..") for p in parts) or parts[-1].startswith(TMP_PREFIX):
            return None
        return self.root.joinpath(*parts)

    async def open_passive(self, *, extended: bool) -> None:
        if self.passive is not None:
            self.passive.close()
        host = self.device.printer.host
        self.passive = await _Passive.open(host, self.device.certificate.ftps_context)
        port = self.passive.port
        if extended:
            await self.reply(f"229 Entering Extended Passive Mode (|||{port}|)")
        else:
            numbers = host.split(".") if "." in host else ["127", "0", "0", "1"]
            await self.reply(f"227 Entering Passive Mode ({','.join(numbers)},{port >> 8},{port & 0xFF}).")

    async def data_connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        if not self.protected:
            await self.reply("521 Data connections must be protected (PROT P).")
            return None
        passive, self.passive = self.passive, None
        if passive is None:
            await self.reply("425 Use PASV or EPSV first.")
            return None
        await self.reply("150 Opening BINARY mode data connection.")
        try:
            return await passive.accept()
        except (TimeoutError, ConnectionError, ssl.SSLError):
            await self.reply("425 Can't open data connection.")
            return None
        finally:
            passive.close()

    async def store(self, arg: str) -> None:
        path = self.path(arg)
        if path is None:
            await self.reply("553 File name not allowed.")
            return
        data = await self.data_connection()
        if data is None:
            return
        reader, writer = data
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
        tmp = Path(tmp_name)
        complete = False
        try:
            with os.fdopen(fd, "wb") as f:
                complete = await self._receive(reader, writer, f)
            if complete:
                os.replace(tmp, path)
        finally:
            if not complete:
                tmp.unlink(missing_ok=True)
            await close(writer)
        if not complete:
            await self.reply("426 Connection closed; transfer aborted.")
            return
        rel = path.relative_to(self.root).as_posix()
        self.device.printer.add_file(describe_file(rel, path))
        await self.reply("226 Transfer complete.")

    async def _receive(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, f: object) -> bool:
        """Copy the data connection to `f` until EOF: True when it ended cleanly."""
        received = 0
        device = self.device
        while True:
            fault = device.fault
            if fault in ("reset_upload", "stall_upload") and received >= RESET_AFTER:
                while fault == "stall_upload" and device.fault == "stall_upload":
                    if await device.farm.wait_closing(HOLD_CHECK):
                        break
                _reset(writer)
                return False
            try:
                async with asyncio.timeout(IDLE_TIMEOUT):
                    chunk = await reader.read(CHUNK)
            except ssl.SSLEOFError:
                return True  # the client closed without close_notify: firmware takes that as done
            except (ConnectionError, TimeoutError, ssl.SSLError) as exc:
                logger.debug("%s: upload cut: %r", device.serial, exc)
                return False
            if not chunk:
                return True  # EOF, with or without close_notify
            f.write(chunk)  # type: ignore[attr-defined]
            received += len(chunk)

    async def listing(self, arg: str, *, names_only: bool) -> None:
        target = (
            self.path(arg) if arg.strip() not in ("", "/", ".") and not arg.startswith("-") else self.root
        )
        data = await self.data_connection()
        if data is None:
            return
        _reader, writer = data
        lines = []
        if target is not None and target.is_dir():
            for entry in sorted(target.iterdir()):
                if entry.name.startswith("."):
                    continue
                if names_only:
                    lines.append(entry.name)
                    continue
                stat = entry.stat()
                kind = "d" if entry.is_dir() else "-"
                stamp = time.strftime("%b %d %H:%M", time.localtime(stat.st_mtime))
                lines.append(f"{kind}rw-rw-rw- 1 root root {stat.st_size:>10} {stamp} {entry.name}")
        writer.write("".join(line + "\r\n" for line in lines).encode())
        await close(writer)
        await self.reply("226 Transfer complete.")


class _Passive:
    """A one-shot listening socket for the next data connection, TLS on accept."""

    def __init__(self, server: asyncio.AbstractServer, port: int) -> None:
        self.server = server
        self.port = port
        self.accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.get_running_loop().create_future()
        )

    @classmethod
    async def open(cls, host: str, context: ssl.SSLContext) -> _Passive:
        holder: list[_Passive] = []

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            passive = holder[0]
            if passive.accepted.done():
                writer.transport.abort()
                return
            passive.accepted.set_result((reader, writer))

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server = await asyncio.start_server(
            on_connect, host, 0, family=family, ssl=context, ssl_handshake_timeout=DATA_TIMEOUT, backlog=1
        )
        port = server.sockets[0].getsockname()[1]
        holder.append(cls(server, port))
        return holder[0]

    async def accept(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with asyncio.timeout(DATA_TIMEOUT):
            return await asyncio.shield(self.accepted)

    def close(self) -> None:
        self.server.close()
        if not self.accepted.done():
            self.accepted.cancel()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Drop a data connection with a TCP reset, as a printer whose SD card failed does."""
    sock = writer.transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
