"""The state sets ("running", "free", ...) are defined once, on `State`, and used everywhere."""

from __future__ import annotations

import ast
from pathlib import Path

from printers.state import State

ROOT = Path(__file__).resolve().parents[2]


def test_the_sets():
    assert {State.PRINTING, State.PAUSED} == State.RUNNING
    assert {State.IDLE, State.FINISHED} == State.FREE
    assert {State.OFFLINE, State.CONNECTING} == State.UNREACHABLE
    assert set(State) - State.UNREACHABLE == State.REACHABLE
    assert not State.RUNNING & State.FREE and not (State.RUNNING | State.FREE) & State.UNREACHABLE
    assert {State.OFFLINE, State.MAINTENANCE} == State.NO_READING
    assert "RUNNING" not in State.__members__ and len(State) == 8  # the sets are no states


def _states_in(node: ast.AST) -> int:
    elements = getattr(node, "elts", [])
    return sum(
        isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name) and e.value.id == "State"
        for e in elements
    )


def restated_sets(path: Path) -> list[int]:
    """Lines that spell out a set of states (a set literal, or `in (State.A, State.B)`)."""

    def spelled_out(node: ast.AST) -> bool:
        if isinstance(node, ast.Set):
            return _states_in(node) >= 2
        return (
            isinstance(node, ast.Compare)
            and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops)
            and any(_states_in(c) >= 2 for c in node.comparators)
        )

    return [node.lineno for node in ast.walk(ast.parse(path.read_text())) if spelled_out(node)]


def test_no_module_restates_a_state_set():
    found = {}
    for app in ("printers", "jobs", "printfarm"):
        for path in (ROOT / app).rglob("*.py"):
            name = str(path.relative_to(ROOT))
            if "tests" in path.parts or name == "printers/state.py":
                continue
            if lines := restated_sets(path):
                found[name] = lines
    assert found == {}, "use State.RUNNING, State.FREE, ... (printers/state.py)"
