"""Apprise behind three calls: check a URL, mask it, send to it (blocking; run off the loop).

Apprise 2.x hands each `notify()` its own log (`log_callback`), so an answer never mixes
with another channel's sent at the same time in another thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import apprise
from apprise.manager_plugins import NotificationManager

ANSWER_MAX = 2000


class BadChannelURL(ValueError):
    """An Apprise URL that names no service or that the service's plugin refuses."""


@dataclass(frozen=True, slots=True)
class Checked:
    masked: str  # Apprise's privacy rendering: secrets cut to their first and last characters
    service: str
    attachments: bool


@dataclass(frozen=True, slots=True)
class Answer:
    ok: bool
    text: str


def check(url: str) -> Checked:
    """What Apprise makes of `url`; BadChannelURL naming the problem if nothing."""
    url = url.strip()
    if not url:
        raise BadChannelURL("Enter an Apprise URL, e.g. mailto://user:password@smtp.example.com.")
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise BadChannelURL("Not an Apprise URL: it has no scheme (like mailto:// or json://).")
    if scheme.lower() not in NotificationManager():
        raise BadChannelURL(f"Not an Apprise URL: {scheme[:20]}:// is not a service Apprise knows.")
    problems: list[str] = []
    handler = _Collect(problems)
    logger = logging.getLogger("apprise")
    logger.addHandler(handler)
    try:
        plugin = apprise.Apprise.instantiate(url)
    finally:
        logger.removeHandler(handler)
    if plugin is None:
        detail = "; ".join(dict.fromkeys(problems)) or "Apprise could not read it"
        raise BadChannelURL(f"Not a usable {scheme}:// URL: {detail.replace(url, '(the URL)')}.")
    return Checked(
        masked=_without_defaults(plugin.url(privacy=True))[:500],
        service=str(plugin.service_name)[:80],
        attachments=bool(getattr(plugin, "attachment_support", False)),
    )


def send(url: str, *, title: str, body: str, failure: bool, attach: str | None, timeout: float) -> Answer:
    """Send one message; the answer is what Apprise logged for this call (a connection error,
    an HTTP status, "Sent ..."). `attach`: an Apprise attachment URL, sent only to services
    that take attachments. Never raises for a channel's fault."""
    entries: list[str] = []
    try:
        notifier = apprise.Apprise()
        if not notifier.add(url):
            return Answer(False, "Apprise refused the channel's URL (changed since it was saved?)")
        attachment = None
        if attach is not None and all(getattr(s, "attachment_support", False) for s in notifier):
            attachment = apprise.AppriseAttachment()
            attachment.add(attach)
        result = notifier.notify(
            body=body,
            title=title,
            notify_type=apprise.NotifyType.FAILURE if failure else apprise.NotifyType.INFO,
            attach=attachment,
            timeout=timeout,
            log_level=logging.INFO,
            log_callback=lambda entry, plugin: entries.append(f"{entry.level}: {entry.message}"),
        )
    except Exception as exc:  # a plugin's bug must not end the sender; the log keeps it
        logging.getLogger(__name__).exception("Apprise failed")
        return Answer(False, f"Apprise failed: {type(exc).__name__}: {exc}"[:ANSWER_MAX])
    ok = bool(result)
    lines = [line for line in entries if not line.endswith("Notifying 1 service(s).")]
    if not lines:
        lines = ["Sent." if ok else "Not sent (Apprise gave no reason)."]
    return Answer(ok, "\n".join(lines)[:ANSWER_MAX])


# Options Apprise writes into every URL it renders, at their defaults: noise on a page.
_DEFAULTS = {"overflow": "upstream", "retry": "0", "wait": "0.5", "optional": "no", "method": "POST"}


def _without_defaults(url: str) -> str:
    base, sep, query = url.partition("?")
    if not sep:
        return url
    kept = [pair for pair in query.split("&") if tuple(pair.split("=", 1)) not in _DEFAULTS.items()]
    return f"{base}?{'&'.join(kept)}" if kept else base


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(level=logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith("Could not load"):  # says only "this URL": the others say why
            self.into.append(message.rstrip("."))
