"""How a followed print's end is judged from one healthy reading (pure rules, no I/O)."""

from __future__ import annotations

import pytest

from jobs.models import GcodeFile, Job
from jobs.outcomes import START_GRACE, Follow, from_history, stopped_outcome
from jobs.transfer import remote_name_for
from printers.drivers.base import PrintRecord
from printers.state import PrinterStatus, State

S = Job.State
NAME = "cube-job7.gcode"


def follow(**fields) -> Follow:
    return Follow(job_id=7, printer_id=1, remote_name=NAME, started=0.0, **fields)


@pytest.mark.parametrize(
    ("fields", "status", "expected"),
    [
        ({}, PrinterStatus(State.FINISHED, file=NAME), (S.COMPLETED, "Finished on the printer")),
        (
            {"recovered": True},
            PrinterStatus(State.FINISHED, file=f"gcodes/{NAME}"),
            (S.COMPLETED, "Finished on the printer (ended while the poller was away)"),
        ),
        (
            {"seen_running": True},
            PrinterStatus(State.ERROR, message="MINTEMP"),
            (S.FAILED, "The printer reported an error: MINTEMP"),
        ),
        # Contact was lost and the printer came back idle: a failure, never a cancel.
        (
            {"seen_running": True, "was_lost": True, "lost_message": "Klipper not ready: disconnected"},
            PrinterStatus(State.IDLE),
            (
                S.FAILED,
                "Contact with the printer was lost (Klipper not ready: disconnected); "
                "it came back without the print",
            ),
        ),
        ({"seen_running": True}, PrinterStatus(State.IDLE), (S.CANCELLED, "Stopped at the printer")),
        (
            {"seen_running": True},
            PrinterStatus(State.PRINTING, file="other.gcode"),
            (
                S.FAILED,
                "The printer is printing another file (other.gcode); how this print ended was not seen",
            ),
        ),
        (
            {"recovered": True},
            PrinterStatus(State.FINISHED, file="other.gcode"),
            (S.FAILED, "The printer finished another file while the poller was away"),
        ),
        ({}, PrinterStatus(State.IDLE), None),  # a confirmed start may take a moment to show
        # Never seen printing, but the printer names the print as its last job: it began, and
        # was stopped on the printer before a reading showed it (OctoPrint keeps it selected).
        ({}, PrinterStatus(State.IDLE, file=NAME), (S.CANCELLED, "Stopped at the printer")),
        (
            {},
            PrinterStatus(State.IDLE, message="Print cancelled", file=f"gcodes/{NAME}"),
            (S.CANCELLED, "Print cancelled"),
        ),
        ({}, PrinterStatus(State.IDLE, file="other.gcode"), None),
    ],
)
def test_stopped_outcome(fields, status, expected) -> None:
    assert stopped_outcome(follow(**fields), status, now=1.0) == expected


def test_a_start_that_never_shows_fails_after_the_grace() -> None:
    state, reason = stopped_outcome(follow(), PrinterStatus(State.IDLE), now=START_GRACE + 1)
    assert state == S.FAILED and "did not start the print" in reason


@pytest.mark.parametrize(
    ("outcome", "state", "words"),
    [
        ("completed", S.COMPLETED, "Finished on the printer"),
        ("cancelled", S.CANCELLED, "Cancelled at the printer"),
        ("error", S.FAILED, "with an error: Heater extruder not heating"),
        ("klippy_shutdown", S.FAILED, "Klipper shut down during the print (klippy_shutdown)"),
        ("klippy_disconnect", S.FAILED, "(klippy_disconnect)"),
        ("interrupted", S.FAILED, "Moonraker restarted"),
        ("something_new", S.FAILED, "The printer's history says something_new"),
    ],
)
def test_history_outcomes(outcome: str, state: str, words: str) -> None:
    status = PrinterStatus(
        State.ERROR if state == S.FAILED else State.IDLE, message="Heater extruder not heating"
    )
    got_state, reason = from_history(PrintRecord(file=NAME, outcome=outcome), status)
    assert got_state == state and words in reason


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("benchy.gcode", "benchy-job42.gcode"),
        ("Part.v2.GCODE", "Part.v2-job42.GCODE"),
        ("plate.gcode.3mf", "plate-job42.gcode.3mf"),
        ("x.bgcode", "x-job42.bgcode"),
        ("noext", "noext-job42"),
        ("a/b.gcode", "a_b-job42.gcode"),
        (".gcode", ".gcode-job42"),
    ],
)
def test_each_job_gets_its_own_name_on_the_printer(name: str, expected: str) -> None:
    job = Job(pk=42, file=GcodeFile(name=name, sha256="0" * 64, size=1))
    assert remote_name_for(job) == expected
