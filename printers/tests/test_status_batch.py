"""The poller's status flush: worked out before the write transaction, written in a few statements.

Issue 7: one UPDATE per changed row under SQLite's write lock, each a GIL hand-off to the
poller's busy event loop, held the lock 1-3 s per flush of a 1,000-printer farm, and web
writes waited behind it.
"""

from __future__ import annotations

import datetime as dt
import math

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from printers import services, status_writer
from printers.models import PrinterEvent, PrinterStatusRow
from printers.state import PrinterStatus, State
from printers.tests.factories import PrinterFactory

pytestmark = pytest.mark.django_db


def _printing(i: int) -> PrinterStatus:
    return PrinterStatus(
        state=State.PRINTING,
        hotend_actual=210.0 + i / 10,
        hotend_target=215.0,
        bed_actual=60.0,
        bed_target=60.0,
        progress=i / 3,
        file=f"part-{i}.gcode",
        elapsed=60 + i,
        remaining=600 - i,
        firmware="",
    )


def test_a_hundred_changed_printers_are_written_in_a_few_statements():
    printers = [PrinterFactory() for _ in range(100)]
    t0 = timezone.now()
    services.printer_status_record_many(
        readings=[(p.pk, PrinterStatus(state=State.IDLE, firmware="Klipper v0.12")) for p in printers], now=t0
    )
    changes = services.printer_status_changes(readings=[(p.pk, _printing(i)) for i, p in enumerate(printers)])
    t1 = t0 + dt.timedelta(seconds=5)
    with CaptureQueriesContext(connection) as queries:
        written = services.printer_status_apply(changes=changes, now=t1)
    assert sorted(written) == sorted(p.pk for p in printers)
    # One UPDATE for the rows, one INSERT for the 100 "started printing" events.
    assert len(queries) <= 3
    row = PrinterStatusRow.objects.get(pk=printers[7].pk)
    assert (row.state, row.progress, row.file, row.elapsed) == (State.PRINTING, 7 / 3, "part-7.gcode", 67)
    assert row.firmware == "Klipper v0.12"  # an empty reading keeps what a probe learned
    assert (row.state_since, row.last_seen, row.updated_at) == (t1, t1, t1)
    started = PrinterEvent.objects.filter(printer=printers[7], message__startswith="Started printing")
    assert started.count() == 1


def test_only_what_changed_moves_state_since_and_the_revision():
    printer = PrinterFactory()
    t0 = timezone.now()
    services.printer_status_record_many(readings=[(printer.pk, _printing(1))], now=t0)
    before = PrinterStatusRow.objects.get(pk=printer.pk)
    t1 = t0 + dt.timedelta(seconds=2)
    services.printer_status_record_many(readings=[(printer.pk, _printing(2))], now=t1)
    after = PrinterStatusRow.objects.get(pk=printer.pk)
    assert after.state_since == before.state_since == t0  # still printing
    assert after.revision == before.revision + 1
    t2 = t1 + dt.timedelta(seconds=2)
    services.printer_status_record_many(readings=[(printer.pk, PrinterStatus.offline("refused"))], now=t2)
    gone = PrinterStatusRow.objects.get(pk=printer.pk)
    assert (gone.state, gone.state_since, gone.last_seen) == (State.OFFLINE, t2, t1)  # unreachable: not seen


def test_a_reading_that_is_not_a_number_is_stored_as_unknown():
    printer = PrinterFactory()
    odd = PrinterStatus(state=State.IDLE, hotend_actual=math.nan, bed_actual=math.inf)
    services.printer_status_record_many(readings=[(printer.pk, odd)])
    row = PrinterStatusRow.objects.get(pk=printer.pk)
    assert (row.hotend_actual, row.bed_actual) == (None, None)


@pytest.mark.django_db(transaction=True)
def test_the_flush_diffs_before_its_transaction_and_writes_inside_it(monkeypatch):
    printers = [PrinterFactory() for _ in range(30)]
    disabled = PrinterFactory(enabled=False)
    readings = [(p.pk, _printing(i)) for i, p in enumerate([*printers, disabled])]
    seen: list[bool] = []
    real = services.printer_status_changes

    def spy(**kwargs):
        seen.append(connection.in_atomic_block)
        return real(**kwargs)

    monkeypatch.setattr(status_writer, "printer_status_changes", spy)
    with CaptureQueriesContext(connection) as queries:
        written = status_writer.status_write(readings, [])
    assert seen == [False]
    assert sorted(written) == sorted(p.pk for p in printers)  # the disabled one keeps "maintenance"
    begin = next(i for i, q in enumerate(queries.captured_queries) if q["sql"].startswith("BEGIN"))
    # Inside the transaction: which printers are still enabled, the UPDATE, the events.
    commit = next(i for i, q in enumerate(queries.captured_queries) if q["sql"].startswith("COMMIT"))
    # (After it, with Redis, the announcement renders the changed cards: outside the lock.)
    assert commit - begin - 1 <= 4
    assert PrinterStatusRow.objects.get(pk=disabled.pk).state == State.MAINTENANCE
