"""The audit log: every user intent (web, API, slicer) recorded in one call.

Model-level (it imports only the models), so the printers and jobs services write their
entries inside their own transactions: an action and its audit entry commit together.
"""

from __future__ import annotations

from typing import Any

from printfarm.accounts.models import AuditEntry

# Class names that read badly in the log's "target type" column.
TYPE_NAMES = {"gcodefile": "file", "apitoken": "token"}


def _type_of(target: Any) -> str:
    name = type(target).__name__.lower()
    return TYPE_NAMES.get(name, name)


def is_user(by: object) -> bool:
    """Whether `by` (a service's actor) is a signed-in user, whose actions are audited; the
    system, and names given by scripts and tests, are not."""
    return getattr(by, "is_authenticated", False) is True


def user_name(by: object) -> str:
    """The name an event row keeps for `by`: a user's username, a given name, or "" for the system."""
    if by is None:
        return ""
    if isinstance(by, str):
        return by
    return getattr(by, "get_username", lambda: str(by))()


def audit_record(
    user: Any,
    action: str,
    *,
    target: Any = None,
    target_type: str = "",
    detail: str = "",
    via: str = "web",
) -> AuditEntry:
    """Record that `user` did `action` (dotted, e.g. "printer.command") to `target` (a model
    instance; its class name and str() are kept, so the entry outlives it)."""
    authenticated = getattr(user, "is_authenticated", False)
    return AuditEntry.objects.create(
        user=user if authenticated else None,
        username=user.get_username() if authenticated else "",
        action=action,
        target_type=target_type or (_type_of(target) if target is not None else ""),
        target_id=str(getattr(target, "pk", "") or ""),
        target_label=str(target)[:255] if target is not None else "",
        detail=detail[:500],
        via=via,
    )
