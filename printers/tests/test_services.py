"""Status writes: only changes are written, transitions leave events, config edits are logged."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from printers import services
from printers.models import PrinterEvent, PrinterStatusRow, TemperatureSample
from printers.state import PrinterStatus, State

pytestmark = pytest.mark.django_db


def make_printer(name: str = "voron-1", **fields):
    return services.printer_create(
        fields={"name": name, "protocol": "moonraker", "base_url": "http://127.0.0.1:7125", **fields},
        tags=["Lab-A", " lab-a ", "petg"],
        by="tester",
    )


def test_create_makes_status_row_and_normalised_tags():
    printer = make_printer()
    assert printer.status.state == State.CONNECTING
    assert sorted(t.name for t in printer.tags.all()) == ["lab-a", "petg"]
    assert printer.events.get().message == "Printer added"


def test_disabled_printer_starts_in_maintenance():
    printer = make_printer(enabled=False)
    assert printer.status.state == State.MAINTENANCE


def test_unchanged_reading_is_not_written():
    printer = make_printer()
    idle = PrinterStatus(state=State.IDLE, hotend_actual=22.0, bed_actual=22.0)
    now = timezone.now()
    assert services.printer_status_record_many(readings=[(printer.pk, idle)], now=now) == [printer.pk]
    revision = PrinterStatusRow.objects.get(pk=printer.pk).revision
    later = now + dt.timedelta(seconds=5)
    assert services.printer_status_record_many(readings=[(printer.pk, idle)], now=later) == []
    row = PrinterStatusRow.objects.get(pk=printer.pk)
    assert row.revision == revision
    assert row.updated_at == now


def test_heartbeat_refreshes_last_seen_without_a_revision():
    printer = make_printer()
    idle = PrinterStatus(state=State.IDLE)
    now = timezone.now()
    services.printer_status_record_many(readings=[(printer.pk, idle)], now=now)
    revision = PrinterStatusRow.objects.get(pk=printer.pk).revision
    later = now + services.HEARTBEAT
    assert services.printer_status_record_many(readings=[(printer.pk, idle)], now=later) == []
    row = PrinterStatusRow.objects.get(pk=printer.pk)
    assert (row.last_seen, row.revision) == (later, revision)


def test_state_change_records_event_and_since():
    printer = make_printer()
    t0 = timezone.now()
    services.printer_status_record_many(readings=[(printer.pk, PrinterStatus(state=State.IDLE))], now=t0)
    t1 = t0 + dt.timedelta(seconds=3)
    printing = PrinterStatus(state=State.PRINTING, file="benchy.gcode", progress=1.0)
    services.printer_status_record_many(readings=[(printer.pk, printing)], now=t1)
    row = PrinterStatusRow.objects.get(pk=printer.pk)
    assert (row.state, row.state_since, row.file) == ("printing", t1, "benchy.gcode")
    latest = PrinterEvent.objects.filter(printer=printer).first()
    assert latest.message == "Started printing benchy.gcode"


def test_offline_keeps_last_seen_and_firmware():
    printer = make_printer()
    t0 = timezone.now()
    online = PrinterStatus(state=State.IDLE, firmware="Moonraker v0.9")
    services.printer_status_record_many(readings=[(printer.pk, online)], now=t0)
    offline = PrinterStatus.offline("Connection refused")
    services.printer_status_record_many(readings=[(printer.pk, offline)], now=t0 + dt.timedelta(seconds=9))
    row = PrinterStatusRow.objects.get(pk=printer.pk)
    assert (row.state, row.last_seen, row.firmware) == ("offline", t0, "Moonraker v0.9")
    assert PrinterEvent.objects.filter(printer=printer).first().message == "Went offline: Connection refused"


def test_reading_for_deleted_printer_is_ignored():
    printer = make_printer()
    pk = printer.pk
    services.printer_delete(printer=printer)
    assert services.printer_status_record_many(readings=[(pk, PrinterStatus(state=State.IDLE))]) == []


def test_update_logs_changed_fields_without_key_value():
    printer = make_printer(api_key="secret-key-1")
    changes = {"api_key": "secret-key-2", "location": "Shelf 2"}
    services.printer_update(printer=printer, fields=changes, by="ann")
    event = PrinterEvent.objects.filter(printer=printer, kind="config").first()
    assert event.message == "Changed API key, location"
    assert "secret" not in event.message
    assert event.by == "ann"


def test_disabling_sets_maintenance_enabling_waits_for_poll():
    printer = make_printer()
    services.printer_update(printer=printer, fields={"enabled": False})
    assert PrinterStatusRow.objects.get(pk=printer.pk).state == State.MAINTENANCE
    services.printer_update(printer=printer, fields={"enabled": True})
    assert PrinterStatusRow.objects.get(pk=printer.pk).state == State.CONNECTING


def test_temperature_history_is_pruned_after_an_hour():
    printer = make_printer()
    t0 = timezone.now()
    reading = PrinterStatus(state=State.IDLE, hotend_actual=200.0, bed_actual=60.0)
    services.temperature_samples_record(samples=[(printer.pk, reading)], now=t0)
    services.temperature_samples_record(samples=[(printer.pk, reading)], now=t0 + dt.timedelta(minutes=61))
    assert TemperatureSample.objects.filter(printer=printer).count() == 1


def test_unstorable_text_from_a_printer_is_cleaned_not_fatal():
    printer = make_printer()
    other = make_printer("voron-2")
    garbage = PrinterStatus(state=State.ERROR, message="bad \ud800 byte\x00", file="part\udfff.gcode")
    fine = PrinterStatus(state=State.IDLE)
    written = services.printer_status_record_many(readings=[(printer.pk, garbage), (other.pk, fine)])
    assert sorted(written) == sorted([printer.pk, other.pk])
    row = PrinterStatusRow.objects.get(pk=printer.pk)
    assert (row.message, row.file) == ("bad ? byte", "part?.gcode")


def test_over_long_message_is_cut_before_comparing():
    printer = make_printer()
    chatty = PrinterStatus(state=State.PRINTING, message="M117 " + "x" * 900)
    assert services.printer_status_record_many(readings=[(printer.pk, chatty)]) == [printer.pk]
    assert services.printer_status_record_many(readings=[(printer.pk, chatty)]) == []


def test_sample_for_a_deleted_printer_is_dropped():
    printer = make_printer()
    gone = make_printer("voron-gone")
    reading = PrinterStatus(state=State.IDLE, hotend_actual=21.0)
    gone_pk = gone.pk
    services.printer_delete(printer=gone)
    services.temperature_samples_record(samples=[(printer.pk, reading), (gone_pk, reading)])
    assert TemperatureSample.objects.count() == 1


def test_rename_and_tag_edits_bump_the_card_revision():
    printer = make_printer()
    before = PrinterStatusRow.objects.get(pk=printer.pk).revision
    services.printer_update(printer=printer, fields={"name": "voron-renamed"}, tags=["lab-a", "petg"])
    assert PrinterStatusRow.objects.get(pk=printer.pk).revision == before + 1
    services.printer_update(printer=printer, fields={}, tags=["lab-b"])
    assert PrinterStatusRow.objects.get(pk=printer.pk).revision == before + 2
    assert printer.events.filter(kind="config").first().message == "Changed tags"
