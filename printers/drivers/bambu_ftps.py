"""Upload to a Bambu Lab printer's SD card: implicit-TLS FTPS (printer-protocols.md §4.3).

ftplib blocks, so the driver runs `ftps_upload` in a thread. The printer's FTPS server wants
TLS from the first byte (implicit, port 990), `PROT P`, and the control connection's TLS
session reused on each data connection; it never answers a TLS close after STOR, so the data
socket is closed without `unwrap()` (ha-bambulab and bambulabs_api do the same).
"""

from __future__ import annotations

import contextlib
import ftplib
import socket
import ssl
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

CHUNK = 256 * 1024


class ImplicitFTPS(ftplib.FTP_TLS):
    """FTP_TLS speaking TLS from the connect, and reusing its session on data connections."""

    def __init__(self, *, context: ssl.SSLContext, server_hostname: str, timeout: float) -> None:
        self._sock: socket.socket | None = None
        self.data: socket.socket | None = None  # the transfer under way
        self.check_certificate: Callable[[bytes], None] | None = None
        super().__init__(context=context, timeout=timeout)
        self.server_hostname = server_hostname

    # ftplib.FTP.connect stores the plain socket in self.sock; wrap it before reading the welcome.
    @property
    def sock(self) -> Any:
        return self._sock

    @sock.setter
    def sock(self, value: socket.socket | None) -> None:
        if value is not None and not isinstance(value, ssl.SSLSocket):
            value = self.context.wrap_socket(value, server_hostname=self.server_hostname)
            if self.check_certificate is not None:
                try:
                    self.check_certificate(value.getpeercert(binary_form=True) or b"")
                except BaseException:
                    value.close()
                    raise
        self._sock = value

    def kill(self) -> None:
        """From another thread: end the transfer now (its next socket call fails)."""
        for sock in (self.data, self._sock):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(
                conn, server_hostname=self.server_hostname, session=self.sock.session
            )
        self.data = conn
        return conn, size


def ftps_upload(
    *,
    ftp: ImplicitFTPS,
    host: str,
    port: int,
    password: str,
    path: Path,
    remote_name: str,
    progress: Callable[[int, int], None] | None = None,
    check_certificate: Callable[[bytes], None] | None = None,
) -> None:
    """STOR `path` as `remote_name` in the card's root; returns once the server confirmed the
    transfer (226) and reports the full size. Raises ftplib/OSError/ssl errors as they come.
    `check_certificate` sees the server's certificate before the password is sent."""
    total = path.stat().st_size
    ftp.check_certificate = check_certificate
    try:
        ftp.connect(host, port)
        ftp.login("bblp", password)
        ftp.prot_p()  # sends PBSZ 0 then PROT P
        ftp.voidcmd("TYPE I")
        _make_folders(ftp, remote_name)
        sent = 0
        if progress is not None:
            progress(0, total)
        with path.open("rb") as file:
            conn, _ = ftp.ntransfercmd(f"STOR {remote_name}")
            try:
                while chunk := file.read(CHUNK):
                    conn.sendall(chunk)
                    sent += len(chunk)
                    if progress is not None:
                        progress(sent, total)
            finally:
                conn.close()  # no unwrap(): the printer never answers the TLS close
        reply = ftp.voidresp()  # 226 once the file is complete; an error reply raises
        if not reply.startswith("2"):
            raise ftplib.error_reply(reply)
        size = _remote_size(ftp, remote_name)
        if size is not None and size != total:
            raise ftplib.error_reply(f"the printer holds {size} of {total} bytes")
        _quit(ftp)
    finally:
        ftp.close()


def _make_folders(ftp: ftplib.FTP, remote_name: str) -> None:
    """MKD each folder of `remote_name`; one that exists (or a server without MKD) is fine:
    STOR says whether the file could be stored."""
    folder = ""
    for part in PurePosixPath(remote_name).parent.parts:
        folder = f"{folder}/{part}" if folder else part
        with contextlib.suppress(ftplib.error_perm):
            ftp.mkd(folder)


def _remote_size(ftp: ftplib.FTP, name: str) -> int | None:
    """SIZE of the stored file; None when the server has no SIZE command."""
    try:
        return ftp.size(name)
    except ftplib.error_perm as exc:
        if str(exc).startswith(("500", "502")):
            return None
        raise


def _quit(ftp: ftplib.FTP) -> None:
    with contextlib.suppress(OSError, EOFError, ftplib.Error):
        ftp.quit()  # the file is stored; a rude goodbye changes nothing
