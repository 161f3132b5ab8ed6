"""Printer pages with and without HX-Request; commands and test-connection against the simulator."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from printers.commands import connection_probe, printer_config
from printers.models import Printer, PrinterEvent, TemperatureSample
from printers.services import printer_event_record
from printers.simulator import running_farm
from printers.state import State
from printers.tests.factories import UNREACHABLE_URL, PrinterFactory, UserFactory, set_status

pytestmark = pytest.mark.django_db

SECRET = "sk-live-DO-NOT-LEAK-4242"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def farm():
    # 60x: a 6000-simulated-second print stays "printing" for the whole test.
    with running_farm(count=2, protocol="mixed", speed=60) as farm:
        yield farm


def sim_printer(farm, index: int, **fields) -> Printer:
    sim = farm.printers[index]
    return PrinterFactory(name=sim.name, protocol=sim.protocol, base_url=sim.base_url, **fields)


def probe(printer: Printer):
    outcome = asyncio.run(connection_probe(protocol=printer.protocol, config=printer_config(printer)))
    assert outcome.ok, outcome.message
    return outcome.probe.status


def text(response) -> str:
    return response.content.decode()


def form_data(**overrides) -> dict:
    data = {
        "name": "voron-1",
        "protocol": "moonraker",
        "base_url": UNREACHABLE_URL,
        "api_key": "",
        "enabled": "on",
        "tags": "lab-a, petg",
        "location": "Shelf 1",
        "nozzle_diameter": "0.4",
        "build_x": "250",
        "build_y": "250",
        "build_z": "240",
        "material": "PETG",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# -- access ----------------------------------------------------------------------------------


def test_every_page_and_action_redirects_anonymous_to_login(client):
    printer = PrinterFactory()
    pk = printer.pk
    gets = [
        reverse("printers:dashboard"),
        reverse("printers:add"),
        reverse("printers:detail", args=[pk]),
        reverse("printers:edit", args=[pk]),
        reverse("printers:delete", args=[pk]),
    ]
    posts = [
        reverse("printers:add"),
        reverse("printers:edit", args=[pk]),
        reverse("printers:delete", args=[pk]),
        reverse("printers:test_connection"),
        reverse("printers:test_connection", args=[pk]),
        reverse("printers:command", args=[pk, "pause"]),
        reverse("printers:command", args=[pk, "emergency-stop"]),
    ]
    for url in gets:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login") + "?next="), url
    for url in posts:
        response = client.post(url, form_data())
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url
    assert Printer.objects.filter(pk=pk).exists()
    assert not PrinterEvent.objects.filter(kind=PrinterEvent.Kind.COMMAND).exists()


def test_login_page_renders(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert 'name="username"' in text(response)


# -- dashboard -------------------------------------------------------------------------------


def test_dashboard_full_page_and_htmx_fragment(web):
    printer = PrinterFactory(name="voron-1")
    page = web.get(reverse("printers:dashboard"))
    assert page.status_code == 200
    body = text(page)
    assert "<html" in body
    assert f'id="printer-card-{printer.pk}"' in body
    assert 'id="state-counts"' in body
    assert 'ws-connect="/ws/farm/?since=' in body
    assert "js/vendor/htmx.min.js" in body

    fragment = web.get(reverse("printers:dashboard"), **HX)
    body = text(fragment)
    assert "<html" not in body
    assert "<body" not in body
    assert body.lstrip().startswith('<section id="printer-grid"')
    assert f'id="printer-card-{printer.pk}"' in body
    assert 'id="state-counts"' in body
    assert "HX-Request" in fragment["Vary"]


def test_history_restore_gets_the_whole_page(web):
    response = web.get(reverse("printers:dashboard"), HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HX)
    assert "<html" in text(response)


def test_card_shows_temperatures_progress_time_left_and_file(web):
    printer = PrinterFactory(name="voron-1")
    set_status(
        printer,
        State.PRINTING,
        hotend_actual=214.94,
        hotend_target=215.0,
        bed_actual=60.0,
        bed_target=60.0,
        progress=42.4,
        remaining=3720,
        file="benchy.gcode",
        message="Layer 12/80",
    )
    body = text(web.get(reverse("printers:dashboard")))
    assert "214.9 / 215 °C" in body
    assert "60 / 60 °C" in body
    assert "42%" in body
    assert "1 h 02 min left" in body
    assert "benchy.gcode" in body
    assert "Layer 12/80" in body
    assert "st-printing" in body


def test_cached_cards_carry_each_sessions_own_csrf_token():
    from django.test import Client

    printer = PrinterFactory(name="voron-1")
    set_status(printer, State.IDLE)
    url = reverse("printers:command", args=[printer.pk, "cooldown"])
    sessions = []
    for _ in range(2):
        browser = Client(enforce_csrf_checks=True)
        browser.force_login(UserFactory())
        body = text(browser.get(reverse("printers:dashboard")))
        card_form = re.search(
            r'class="card-actions".*?name="csrfmiddlewaretoken" value="([^"]+)"',
            body,
            re.S,
        )
        sessions.append((browser, card_form.group(1)))
    (first, first_token), (second, second_token) = sessions
    # Both pages came from the same cached card HTML; each form posts with its own session.
    assert first.post(url, {"csrfmiddlewaretoken": first_token}).status_code == 302
    assert second.post(url, {"csrfmiddlewaretoken": second_token}).status_code == 302
    assert second.post(url, {"csrfmiddlewaretoken": first_token}).status_code == 403


def test_card_changes_when_the_reading_changes(web):
    printer = PrinterFactory(name="voron-1")
    set_status(printer, State.IDLE, hotend_actual=22.0)
    assert "22 °C" in text(web.get(reverse("printers:dashboard")))
    set_status(printer, State.IDLE, hotend_actual=23.5)
    body = text(web.get(reverse("printers:dashboard")))
    assert "23.5 °C" in body
    assert "22 °C" not in body


def test_offline_card_says_for_how_long_and_when_last_seen(web):
    printer = PrinterFactory()
    set_status(printer, State.IDLE, hotend_actual=22.0)
    set_status(printer, State.OFFLINE, message="Connection refused at http://127.0.0.1:9")
    body = text(web.get(reverse("printers:dashboard")))
    card = re.search(rf'<article id="printer-card-{printer.pk}".*?</article>', body, re.S).group(0)
    assert "Offline <time" in card
    assert "for 0 s" in card
    assert "last seen " in card
    assert "Connection refused" in card
    assert "E-stop" not in card  # no actions for an offline printer


def test_actions_follow_the_state(web):
    printing = set_status(PrinterFactory(), State.PRINTING, progress=5.0)
    paused = set_status(PrinterFactory(), State.PAUSED, progress=5.0)
    idle = set_status(PrinterFactory(), State.IDLE)
    body = text(web.get(reverse("printers:dashboard")))

    def buttons(printer):
        card = re.search(rf'<article id="printer-card-{printer.pk}".*?</article>', body, re.S).group(0)
        return re.findall(r'hx-post="/printers/\d+/command/([a-z-]+)/"', card)

    assert buttons(printing) == ["pause", "cancel", "emergency-stop"]
    assert buttons(paused) == ["resume", "cancel", "emergency-stop"]
    assert buttons(idle) == ["preheat-pla", "preheat-petg", "preheat-abs", "cooldown", "emergency-stop"]
    # Every action is also a real form post, and the risky ones ask first.
    assert f'formaction="/printers/{printing.pk}/command/pause/"' in body
    assert 'hx-confirm="Cancel the current print?"' in body
    assert 'method="post"' in body


def test_filters_by_state_and_tag(web):
    a = set_status(PrinterFactory(name="alpha", tags=["lab-a"]), State.PRINTING, progress=1.0)
    b = set_status(PrinterFactory(name="bravo", tags=["lab-b"]), State.PRINTING, progress=1.0)
    c = set_status(PrinterFactory(name="charlie", tags=["lab-a"]), State.IDLE)
    url = reverse("printers:dashboard")

    def shown(**query) -> set[int]:
        body = text(web.get(url, query, **HX))
        return {int(pk) for pk in re.findall(r'<article id="printer-card-(\d+)"', body)}

    assert shown() == {a.pk, b.pk, c.pk}
    assert shown(state="printing") == {a.pk, b.pk}
    assert shown(tag="lab-a") == {a.pk, c.pk}
    assert shown(state="printing", tag="lab-a") == {a.pk}
    assert shown(state="nonsense") == {a.pk, b.pk, c.pk}
    assert shown(state="maintenance") == set()

    body = text(web.get(url, {"state": "printing", "tag": "lab-a"}))
    # Real links that htmx enhances, keeping the other filter.
    assert 'href="/?state=idle&amp;tag=lab-a"' in body
    assert 'hx-get="/?state=printing&amp;tag=lab-b" hx-push-url="true"' in body
    assert 'data-filter-state="printing"' in body
    assert '<input type="hidden" name="tag" value="lab-a">' in body
    # The grid polls its own current URL while the socket is down.
    assert 'hx-get="/?state=printing&amp;tag=lab-a"' in body


def test_disabled_printer_counts_and_filters_as_maintenance(web):
    printer = PrinterFactory(enabled=False)
    body = text(web.get(reverse("printers:dashboard"), {"state": "maintenance"}, **HX))
    assert f'id="printer-card-{printer.pk}"' in body
    assert "<b>1</b> maintenance" in body


def test_state_counts_cover_the_whole_farm(web):
    for _ in range(2):
        set_status(PrinterFactory(), State.PRINTING, progress=3.0)
    set_status(PrinterFactory(), State.OFFLINE)
    PrinterFactory()  # connecting until the first poll
    body = text(web.get(reverse("printers:dashboard"), {"state": "offline"}))
    counts = re.search(r'<nav id="state-counts".*?</nav>', body, re.S).group(0)
    assert "<b>4</b> all" in counts
    assert "<b>2</b> printing" in counts
    assert "<b>1</b> offline" in counts
    assert "<b>1</b> connecting" in counts
    assert "<b>0</b> error" in counts


def test_wall_view_shows_tiles_without_forms(web):
    printer = set_status(
        PrinterFactory(), State.PRINTING, progress=50.0, hotend_actual=210, hotend_target=210
    )
    response = web.get(reverse("printers:dashboard"), {"view": "wall"})
    body = text(response)
    assert 'class="farm farm-wall"' in body
    opening = f'<article id="printer-card-{printer.pk}" class="card tile st-printing">'
    tile = re.search(re.escape(opening) + ".*?</article>", body, re.DOTALL)
    assert tile, body
    assert 'title="Hotend 210 / 210 °C">H 210/210<' in tile.group(0)
    assert "50%" in tile.group(0)
    assert "<form" not in tile.group(0) and "hx-post" not in tile.group(0)  # a wall has no buttons
    assert "page-dashboard wall" in body
    # Its socket asks for tiles, the dashboard's for cards (printers/realtime.py), each saying
    # when the page read them.
    assert re.search(r'ws-connect="/ws/farm/\?view=wall&amp;since=\d+\.\d{3}"', body)
    dashboard = text(web.get(reverse("printers:dashboard")))
    assert re.search(r'ws-connect="/ws/farm/\?since=\d+\.\d{3}"', dashboard)


def test_dashboard_query_count_does_not_grow_with_printers(web):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert web.get(reverse("printers:dashboard"), **HX).status_code == 200
        return len(ctx.captured_queries)

    for i in range(3):
        set_status(PrinterFactory(tags=[f"t{i}"]), State.PRINTING, progress=1.0)
    few = queries()
    for i in range(25):
        set_status(PrinterFactory(tags=[f"t{i}", "x"]), State.IDLE)
    assert queries() == few


# -- detail ----------------------------------------------------------------------------------


def test_detail_page_has_live_card_chart_events_and_no_key(web, user):
    printer = PrinterFactory(name="voron-1", api_key=SECRET, location="Shelf 3")
    set_status(printer, State.PRINTING, hotend_actual=200.0, hotend_target=215.0, progress=10.0)
    now = timezone.now()
    TemperatureSample.objects.bulk_create(
        TemperatureSample(
            printer=printer,
            at=now - dt.timedelta(minutes=30 - i),
            hotend_actual=150 + i * 2,
            hotend_target=215,
            bed_actual=50,
            bed_target=60,
        )
        for i in range(30)
    )
    printer_event_record(
        printer=printer, kind=PrinterEvent.Kind.COMMAND, message="Pause sent", by=user.username
    )
    response = web.get(reverse("printers:detail", args=[printer.pk]))
    body = text(response)
    assert response.status_code == 200
    assert f'id="printer-card-{printer.pk}"' in body
    assert 'ws-connect="/ws/farm/?since=' in body
    assert body.count("<polyline") == 4  # hotend, bed, and their dashed targets
    assert "line hotend target" in body
    assert ">now<" in body and ">250°<" in body
    assert "Pause sent" in body
    assert user.username in body
    assert "Started printing" in body  # the state transition event
    assert "Shelf 3" in body
    assert reverse("printers:edit", args=[printer.pk]) in body
    assert SECRET not in body


def test_detail_without_samples_says_so(web):
    printer = PrinterFactory()
    assert "No temperature readings" in text(web.get(reverse("printers:detail", args=[printer.pk])))


def test_missing_printer_is_404(web):
    assert web.get(reverse("printers:detail", args=[999])).status_code == 404
    assert web.post(reverse("printers:command", args=[999, "pause"])).status_code == 404


# -- add / edit / delete ------------------------------------------------------------------


def test_add_shows_field_errors_and_saves_nothing(web):
    PrinterFactory(name="voron-1")
    before = Printer.objects.count()

    response = web.post(reverse("printers:add"), form_data(base_url="not a url", api_key=SECRET))
    assert response.status_code == 200
    assert response.context["form"].errors["base_url"] == ["Enter a valid URL."]
    assert "Printer with this Name already exists." in response.context["form"].errors["name"]
    assert SECRET not in text(response)

    response = web.post(reverse("printers:add"), form_data(name="other", base_url="ftp://10.0.0.7"))
    assert "base_url" in response.context["form"].errors

    response = web.post(reverse("printers:add"), {"name": ""})
    errors = response.context["form"].errors
    assert {"name", "protocol", "base_url"} <= set(errors)
    assert 'class="errorlist' in text(response)
    assert Printer.objects.count() == before


def test_add_unreachable_printer_is_saved_and_flagged(web, user):
    response = web.post(reverse("printers:add"), form_data(api_key=SECRET), follow=True)
    printer = Printer.objects.get(name="voron-1")
    assert response.redirect_chain[0][0] == reverse("printers:detail", args=[printer.pk])
    assert printer.api_key == SECRET
    assert printer.base_url == UNREACHABLE_URL
    assert sorted(t.name for t in printer.tags.all()) == ["lab-a", "petg"]
    assert printer.status.state == State.CONNECTING
    [message] = messages_of(response)
    assert message.startswith("Saved, but we couldn't reach it: Connection refused at http://127.0.0.1:9")
    assert message.endswith("It will show as offline until it answers.")
    assert printer.events.get().by == user.username
    assert SECRET not in text(response)


def test_add_reachable_printer_reports_connected(web, farm):
    sim = farm.printers[1]
    data = form_data(name=sim.name, protocol=sim.protocol, base_url=sim.base_url + "/")
    response = web.post(reverse("printers:add"), data, follow=True)
    [message] = messages_of(response)
    assert message.startswith(f"Saved {sim.name}. Connected: ")
    assert Printer.objects.get(name=sim.name).base_url == sim.base_url  # trailing slash dropped


def test_edit_keeps_replaces_and_clears_the_key(web):
    printer = PrinterFactory(name="voron-1", api_key=SECRET, tags=["old"])
    url = reverse("printers:edit", args=[printer.pk])

    page = web.get(url)
    assert page.status_code == 200
    assert SECRET not in text(page)
    assert 'value="old"' in text(page)
    assert "Leave blank to keep the current key." in text(page)

    web.post(url, form_data(api_key="", location="Shelf 9", enabled=None))
    printer.refresh_from_db()
    assert printer.api_key == SECRET
    assert printer.location == "Shelf 9"
    assert printer.enabled is False
    assert printer.status.state == State.MAINTENANCE
    assert sorted(t.name for t in printer.tags.all()) == ["lab-a", "petg"]

    web.post(url, form_data(api_key="new-key"))
    printer.refresh_from_db()
    assert printer.api_key == "new-key"

    response = web.post(url, form_data(api_key="", clear_api_key="on"), follow=True)
    printer.refresh_from_db()
    assert printer.api_key == ""
    messages = printer.events.filter(kind=PrinterEvent.Kind.CONFIG).values_list("message", flat=True)
    assert "Changed API key" in list(messages)
    assert "new-key" not in text(response)


def test_edit_rejects_a_name_another_printer_has(web):
    PrinterFactory(name="taken")
    printer = PrinterFactory(name="mine")
    response = web.post(reverse("printers:edit", args=[printer.pk]), form_data(name="taken"))
    assert "name" in response.context["form"].errors
    printer.refresh_from_db()
    assert printer.name == "mine"


def test_api_key_never_appears_in_any_page(web, admin_client):
    printer = PrinterFactory(api_key=SECRET)
    set_status(printer, State.IDLE)
    pages = [
        web.get(reverse("printers:dashboard")),
        web.get(reverse("printers:dashboard"), {"view": "wall"}),
        web.get(reverse("printers:add")),
        web.get(reverse("printers:edit", args=[printer.pk])),
        web.get(reverse("printers:detail", args=[printer.pk])),
        web.get(reverse("printers:delete", args=[printer.pk])),
        web.post(reverse("printers:edit", args=[printer.pk]), form_data(base_url="bad url", api_key=SECRET)),
        admin_client.get(reverse("admin:printers_printer_change", args=[printer.pk])),
        admin_client.get(reverse("admin:printers_printer_changelist")),
    ]
    for response in pages:
        assert response.status_code == 200
        assert SECRET not in text(response)


def test_admin_change_keeps_key_when_blank(admin_client):
    printer = PrinterFactory(name="voron-1", api_key=SECRET)
    url = reverse("admin:printers_printer_change", args=[printer.pk])
    response = admin_client.post(url, form_data(location="Admin shelf"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    printer.refresh_from_db()
    assert printer.api_key == SECRET
    assert printer.location == "Admin shelf"


def test_admin_add_goes_through_the_service(admin_client):
    response = admin_client.post(reverse("admin:printers_printer_add"), form_data(name="from-admin"))
    assert response.status_code == 302
    printer = Printer.objects.get(name="from-admin")
    assert printer.status.state == State.CONNECTING
    assert sorted(t.name for t in printer.tags.all()) == ["lab-a", "petg"]


def test_delete_asks_first_then_deletes(web):
    printer = PrinterFactory(name="voron-1")
    url = reverse("printers:delete", args=[printer.pk])
    confirm = web.get(url)
    assert confirm.status_code == 200
    assert "Delete voron-1?" in text(confirm)
    assert Printer.objects.filter(pk=printer.pk).exists()

    response = web.post(url, follow=True)
    assert response.redirect_chain[-1][0] == reverse("printers:dashboard")
    assert "Deleted voron-1." in messages_of(response)
    assert not Printer.objects.filter(pk=printer.pk).exists()


def test_delete_over_htmx_redirects_the_client(web):
    printer = PrinterFactory()
    detail = text(web.get(reverse("printers:detail", args=[printer.pk])))
    assert f'hx-post="/printers/{printer.pk}/delete/" hx-confirm=' in detail
    response = web.post(reverse("printers:delete", args=[printer.pk]), **HX)
    assert response["HX-Redirect"] == reverse("printers:dashboard")
    assert not Printer.objects.filter(pk=printer.pk).exists()


# -- commands ---------------------------------------------------------------------------------


def test_unknown_command_is_404_and_get_is_405(web):
    printer = PrinterFactory()
    assert web.post(reverse("printers:command", args=[printer.pk, "self-destruct"])).status_code == 404
    assert web.get(reverse("printers:command", args=[printer.pk, "pause"])).status_code == 405


def test_command_to_offline_printer_shows_the_error_inline(web, user):
    printer = set_status(PrinterFactory(), State.IDLE)
    response = web.post(reverse("printers:command", args=[printer.pk, "preheat-pla"]), **HX)
    assert response.status_code == 200
    body = text(response)
    assert body.lstrip().startswith(f'<article id="printer-card-{printer.pk}"')
    assert 'class="card-result err"' in body
    assert "Connection refused at http://127.0.0.1:9" in body
    event = printer.events.filter(kind=PrinterEvent.Kind.COMMAND).get()
    assert event.message.startswith("PLA failed: Connection refused")
    assert event.by == user.username


def test_command_without_htmx_redirects_back_with_a_message(web):
    printer = set_status(PrinterFactory(name="voron-1"), State.PRINTING, progress=1.0)
    detail = reverse("printers:detail", args=[printer.pk])
    response = web.post(
        reverse("printers:command", args=[printer.pk, "pause"]), HTTP_REFERER=f"http://testserver{detail}"
    )
    assert response.status_code == 302
    assert response["Location"] == f"http://testserver{detail}"
    response = web.post(
        reverse("printers:command", args=[printer.pk, "pause"]), HTTP_REFERER="https://evil.example/"
    )
    assert response["Location"] == reverse("printers:dashboard")
    page = web.get(reverse("printers:dashboard"))
    assert any(m.startswith("voron-1: Connection refused") for m in messages_of(page))


def test_pause_and_resume_a_simulated_print(web, farm, user):
    for index in (0, 1):  # one Moonraker, one OctoPrint
        printer = sim_printer(farm, index)
        farm.start_print(index, "benchy.gcode", duration=6000)
        assert probe(printer).state == State.PRINTING
        set_status(printer, State.PRINTING, progress=1.0)

        response = web.post(reverse("printers:command", args=[printer.pk, "pause"]), **HX)
        assert response.status_code == 200
        assert 'class="card-result ok" role="status">Pause sent<' in text(response)
        assert probe(printer).state == State.PAUSED
        set_status(printer, State.PAUSED, progress=1.0)  # as the poller records it: the card offers resume

        response = web.post(reverse("printers:command", args=[printer.pk, "resume"]), **HX)
        assert "Resume sent" in text(response)
        assert probe(printer).state == State.PRINTING
        events = list(printer.events.filter(kind=PrinterEvent.Kind.COMMAND).values_list("message", "by"))
        assert events == [("Resume sent", user.username), ("Pause sent", user.username)]


def test_pause_refused_by_the_printer_shows_its_message(web, farm):
    printer = set_status(sim_printer(farm, 1), State.PRINTING, progress=1.0)  # idle in reality
    response = web.post(reverse("printers:command", args=[printer.pk, "pause"]), **HX)
    assert response.status_code == 200
    assert 'class="card-result err"' in text(response)


def test_preheat_sets_targets_on_the_printer(web, farm):
    for index in (0, 1):
        printer = set_status(sim_printer(farm, index), State.IDLE)
        response = web.post(reverse("printers:command", args=[printer.pk, "preheat-petg"]), **HX)
        assert "Preheating for PETG (235/80 °C)" in text(response)
        status = probe(printer)
        assert (status.hotend_target, status.bed_target) == (235, 80)

        web.post(reverse("printers:command", args=[printer.pk, "cooldown"]), **HX)
        status = probe(printer)
        assert (status.hotend_target or 0, status.bed_target or 0) == (0, 0)


# -- test connection ----------------------------------------------------------------------------


def test_test_connection_fragment_for_a_reachable_printer(web, farm):
    sim = farm.printers[1]
    response = web.post(
        reverse("printers:test_connection"),
        {"protocol": sim.protocol, "base_url": sim.base_url, "api_key": ""},
        **HX,
    )
    body = text(response)
    assert body.lstrip().startswith('<div id="connection-result" class="conn-result ok"')
    assert re.search(r"Connected: OctoPrint [\d.]+ — state Idle", body), body


def test_test_connection_fragment_for_an_unreachable_printer(web):
    response = web.post(
        reverse("printers:test_connection"),
        {"protocol": "octoprint", "base_url": UNREACHABLE_URL, "api_key": SECRET},
        **HX,
    )
    body = text(response)
    assert response.status_code == 200
    assert 'class="conn-result err"' in body
    assert "Connection refused at http://127.0.0.1:9" in body
    assert SECRET not in body


def test_test_connection_with_invalid_values_explains(web):
    response = web.post(
        reverse("printers:test_connection"), {"protocol": "moonraker", "base_url": "x y"}, **HX
    )
    assert "Can&#x27;t test yet — Address: Enter a valid URL." in text(response)


def test_test_connection_on_edit_uses_the_stored_key(web):
    with running_farm(count=1, protocol="octoprint", speed=60, api_key=SECRET) as farm:
        sim = farm.printers[0]
        printer = PrinterFactory(name=sim.name, protocol=sim.protocol, base_url=sim.base_url, api_key=SECRET)
        data = {"protocol": sim.protocol, "base_url": sim.base_url, "api_key": ""}

        response = web.post(reverse("printers:test_connection", args=[printer.pk]), data, **HX)
        assert "Connected: OctoPrint" in text(response)

        response = web.post(reverse("printers:test_connection"), data, **HX)
        assert "API key rejected" in text(response)

        # Without JS the button posts the form: the whole page comes back with the result.
        response = web.post(reverse("printers:test_connection", args=[printer.pk]), form_data(**data))
        assert "<html" in text(response)
        assert "Connected: OctoPrint" in text(response)
        assert SECRET not in text(response)


def test_test_connection_never_sends_the_stored_key_to_another_address(web):
    with running_farm(count=2, protocol="octoprint", speed=60, api_key=SECRET) as farm:
        home, elsewhere = farm.printers
        printer = PrinterFactory(
            name=home.name, protocol=home.protocol, base_url=home.base_url, api_key=SECRET
        )
        data = {"protocol": elsewhere.protocol, "base_url": elsewhere.base_url, "api_key": ""}
        response = web.post(reverse("printers:test_connection", args=[printer.pk]), data, **HX)
        # The other "printer" demands the key: it was not sent, so it is refused.
        assert "API key rejected" in text(response)
