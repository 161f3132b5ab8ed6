"""Imports between the apps run one way: jobs may use printers, printers never imports jobs;
the API and accounts layers sit on top of both.

Read from the source with ast (every import, at module level or inside a function), so an
import added anywhere in the code fails here. Tests are left out: they drive the whole stack.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The few modules of printers and jobs that use the layers above, and why they must.
ALLOWED_ABOVE = {
    # Services write the audit entry in the write's own transaction; audit is model-level.
    "printers/services.py": {"printfarm.accounts.audit"},
    "jobs/services.py": {"printfarm.accounts.audit"},
    "jobs/library.py": {"printfarm.accounts.audit"},
    # Pages and the websocket check the user's role.
    "printers/views.py": {"printfarm.accounts.roles"},
    "printers/bulk_views.py": {"printfarm.accounts.roles", "printfarm.accounts.models"},
    "printers/camera_views.py": {"printfarm.accounts.roles"},
    "printers/consumers.py": {"printfarm.accounts.roles"},
    "jobs/views/history.py": {"printfarm.accounts.roles"},
    "jobs/views/library.py": {"printfarm.accounts.roles"},
    "jobs/views/queue.py": {"printfarm.accounts.roles"},
}
ABOVE = ("printfarm.api", "printfarm.accounts")


def sources(app: str) -> list[Path]:
    return sorted(p for p in (ROOT / app).rglob("*.py") if "tests" not in p.relative_to(ROOT).parts)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def under(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def test_sources_are_found():
    assert len(sources("printers")) > 20 and len(sources("jobs")) > 20


def test_printers_never_imports_jobs():
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imports(path) if under(m, "jobs"))
        for path in sources("printers")
    }
    assert {path: found for path, found in offenders.items() if found} == {}


@pytest.mark.parametrize("app", ["printers", "jobs"])
def test_api_and_accounts_sit_on_top(app):
    offenders = {}
    for path in sources(app):
        name = str(path.relative_to(ROOT))
        allowed = ALLOWED_ABOVE.get(name, set())
        found = {
            m
            for m in imports(path)
            if any(under(m, layer) for layer in ABOVE) and not any(under(m, a) for a in allowed)
        }
        if found:
            offenders[name] = sorted(found)
    assert offenders == {}


def test_every_allowance_is_still_needed():
    # An allowance nobody uses is a hole the next import walks through unnoticed.
    for name, allowed in ALLOWED_ABOVE.items():
        path = ROOT / name
        assert path.exists(), name
        used = imports(path)
        for module in allowed:
            assert any(under(m, module) for m in used), f"{name} no longer imports {module}"
