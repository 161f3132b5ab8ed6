"""Real receivers on loopback for Apprise to send to: an SMTP server (aiosmtpd) and a JSON
webhook (http.server); a sender with short pauses and a clock the test moves."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from asgiref.sync import sync_to_async
from django.db import connections
from django.utils import timezone

from notifications.sender import Sender
from notifications.tests.helpers import free_port


@dataclass
class Webhook:
    """A JSON webhook: records every body Apprise's json:// posts; answers `status`."""

    port: int
    bodies: list[dict] = field(default_factory=list)
    status: int = 200

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def titles(self) -> list[str]:
        return [b.get("title", "") for b in self.bodies]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            if hook.status < 400:  # kept before answering: once the sender has its 200, it is here
                hook.bodies.append(body)
            self.send_response(hook.status)
            self.send_header("Content-Type", "application/json")
            answer = b'{"ok": true}' if hook.status < 400 else b'{"error": "receiver says no"}'
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hook
    server.shutdown()
    server.server_close()


@dataclass
class Mailbox:
    """An SMTP server; each message received, parsed."""

    port: int
    messages: list[email.message.EmailMessage] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=farm@example.com&to=ops@example.com"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def fast_retries(settings) -> list[float]:
    settings.PRINTFARM_NOTIFY_RETRY_SECONDS = [0.05, 0.05, 0.05]
    return settings.PRINTFARM_NOTIFY_RETRY_SECONDS


@pytest.fixture
async def start_sender() -> AsyncIterator:
    """`await start_sender(clock=..., poller_shard=...)`: a running Sender, closed afterwards."""
    senders: list[Sender] = []

    async def start(*, clock=None, poller_shard=None) -> Sender:
        sender = Sender(clock=clock or timezone.now, interval=0.02, check_interval=0.02, send_timeout=10.0)
        await sender.start(poller_shard=poller_shard)
        senders.append(sender)
        return sender

    yield start
    for sender in senders:
        await sender.aclose()
    await sync_to_async(connections.close_all)()
