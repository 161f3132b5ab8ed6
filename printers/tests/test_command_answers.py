"""What a card command answers when the printer cannot do it now: the drivers' words for a
refusal (against the simulator over loopback HTTP), and the one rule for which commands a
state offers (the card's buttons) and refuses (a command posted anyway)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from django.urls import reverse

from printers.commands import COMMANDS, command_refusal, commands_for_state
from printers.drivers import DRIVERS, Driver, DriverConfig, DriverError, PrinterBusy, get_driver
from printers.drivers.http import make_client
from printers.models import Printer, PrinterEvent
from printers.simulator import SimulatedFarm, running_farm
from printers.state import State
from printers.tests.factories import PrinterFactory, UserFactory, set_status
from printfarm.accounts.models import Role
from printfarm.api.tests.clients import api_client
from printfarm.testing import FarmFactory

MOONRAKER, OCTOPRINT = 0, 1  # indexes in a "mixed" simulated farm
HX = {"HTTP_HX_REQUEST": "true"}
PREHEATS = ["preheat-pla", "preheat-petg", "preheat-abs", "cooldown"]
JOB_COMMANDS = ["pause", "resume", "cancel"]
# What a Klipper whose host Moonraker can't reach answers, whichever way Moonraker says it
# (404 before Klippy ever connected, 503 once it is gone).
NO_KLIPPER = (
    r"^Klipper is not ready: Moonraker has no connection to Klipper — is the Klipper service running\?$"
)


@pytest.fixture
async def moonraker_and_octoprint_sims(make_farm: FarmFactory) -> SimulatedFarm:
    return await make_farm("mixed", count=2)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(timeout=2.0) as http:
        yield http


def driver_of(farm: SimulatedFarm, index: int, http: httpx.AsyncClient, *, protocol: str = "") -> Driver:
    sim = farm.printers[index]
    return get_driver(protocol or sim.protocol, DriverConfig(base_url=sim.base_url), http)


# -- Moonraker ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["emergency-stop", "preheat-pla", "cooldown", *JOB_COMMANDS])
async def test_moonraker_before_klipper_connects_says_klipper_is_not_ready(
    moonraker_and_octoprint_sims: SimulatedFarm, http: httpx.AsyncClient, name: str
) -> None:
    """The reported defect: e-stop and preheat answered "Printer returned HTTP 404: Not Found"
    (Klippy's endpoints don't exist in Moonraker until Klippy first connects)."""
    moonraker_and_octoprint_sims.set_fault(MOONRAKER, "not_ready")
    driver = driver_of(moonraker_and_octoprint_sims, MOONRAKER, http)
    with pytest.raises(PrinterBusy, match=NO_KLIPPER) as caught:
        await COMMANDS[name].run(driver)
    assert not caught.value.permanent  # it may work once Klipper is up


@pytest.mark.parametrize("name", ["emergency-stop", "preheat-pla", *JOB_COMMANDS])
async def test_moonraker_with_klipper_gone_says_klipper_is_not_ready(
    moonraker_and_octoprint_sims: SimulatedFarm, http: httpx.AsyncClient, name: str
) -> None:
    moonraker_and_octoprint_sims.set_fault(MOONRAKER, "disconnect")  # 503 Klippy Host not connected
    with pytest.raises(PrinterBusy, match=NO_KLIPPER):
        await COMMANDS[name].run(driver_of(moonraker_and_octoprint_sims, MOONRAKER, http))


@pytest.mark.parametrize("name", ["preheat-pla", "cooldown", *JOB_COMMANDS])
async def test_moonraker_after_shutdown_gives_klippers_state_message(
    moonraker_and_octoprint_sims: SimulatedFarm, http: httpx.AsyncClient, name: str
) -> None:
    driver = driver_of(moonraker_and_octoprint_sims, MOONRAKER, http)
    await COMMANDS["emergency-stop"].run(driver)  # Klipper shuts down: "Emergency stop"
    with pytest.raises(PrinterBusy, match=r"^Klipper is not ready: Emergency stop$"):
        await COMMANDS[name].run(driver)


async def test_moonraker_command_at_an_address_without_moonraker_says_so(
    moonraker_and_octoprint_sims: SimulatedFarm, http: httpx.AsyncClient
) -> None:
    driver = driver_of(moonraker_and_octoprint_sims, OCTOPRINT, http, protocol="moonraker")
    with pytest.raises(DriverError, match=r"^No Moonraker API at http://127\.0\.0\.1:\d+ ") as caught:
        await COMMANDS["emergency-stop"].run(driver)
    assert caught.value.permanent


# -- OctoPrint ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", [n for n, c in COMMANDS.items() if c.capability in DRIVERS["octoprint"].capabilities]
)
async def test_octoprint_without_its_serial_link_says_not_connected(
    moonraker_and_octoprint_sims: SimulatedFarm, http: httpx.AsyncClient, name: str
) -> None:
    moonraker_and_octoprint_sims.set_fault(OCTOPRINT, "not_ready")  # 409 Printer is not operational
    with pytest.raises(PrinterBusy, match=r"^OctoPrint is not connected to the printer$") as caught:
        await COMMANDS[name].run(driver_of(moonraker_and_octoprint_sims, OCTOPRINT, http))
    assert not caught.value.permanent


async def test_octoprint_after_a_serial_error_says_which(
    moonraker_and_octoprint_sims: SimulatedFarm, http: httpx.AsyncClient
) -> None:
    moonraker_and_octoprint_sims.set_fault(OCTOPRINT, "disconnect")
    with pytest.raises(
        PrinterBusy, match=r"^OctoPrint lost the printer after an error: SerialException: device reports"
    ):
        await COMMANDS["preheat-pla"].run(driver_of(moonraker_and_octoprint_sims, OCTOPRINT, http))


@pytest.mark.parametrize("name", ["pause", "cancel"])
async def test_octoprint_job_command_with_nothing_printing_says_so(
    moonraker_and_octoprint_sims: SimulatedFarm, http: httpx.AsyncClient, name: str
) -> None:
    with pytest.raises(PrinterBusy, match=r"^Nothing is printing$"):
        await COMMANDS[name].run(driver_of(moonraker_and_octoprint_sims, OCTOPRINT, http))


# -- the one rule: buttons per state, refusals for the rest ----------------------------------

BUTTONS = {
    State.PRINTING: ["pause", "cancel", "emergency-stop"],
    State.PAUSED: ["resume", "cancel", "emergency-stop"],
    State.IDLE: [*PREHEATS, "emergency-stop"],
    State.FINISHED: [*PREHEATS, "emergency-stop"],
    State.ERROR: ["emergency-stop"],
    State.MAINTENANCE: ["emergency-stop"],
    State.CONNECTING: [],  # Klipper not ready / OctoPrint's serial port closed: nothing can work
    State.OFFLINE: [],
}


@pytest.mark.parametrize("protocol", sorted(DRIVERS))
def test_every_state_offers_exactly_the_commands_it_does_not_refuse(protocol: str) -> None:
    """The one rule for every protocol: its state's buttons, less what its driver can't carry."""
    assert set(BUTTONS) == set(State)
    can = DRIVERS[protocol].capabilities
    for state in State:
        offered = [c.name for c in commands_for_state(state, protocol)]
        lights = ["light-on", "light-off"] if state in State.REACHABLE else []
        expected = [n for n in BUTTONS[state] + lights if COMMANDS[n].capability in can]
        assert offered == [n for n in COMMANDS if n in expected], (protocol, state)
        for name, command in COMMANDS.items():
            refused = command_refusal(command, state, protocol=protocol)
            assert (refused == "") == (name in offered), (protocol, state, name)


def test_a_printer_that_reports_its_light_is_offered_the_switch_that_changes_it() -> None:
    names = lambda light: [c.name for c in commands_for_state(State.IDLE, "bambu", light=light)]  # noqa: E731
    assert "light-off" in names(True) and "light-on" not in names(True)
    assert "light-on" in names(False) and "light-off" not in names(False)
    assert "emergency-stop" not in names(None)


@pytest.mark.django_db
def test_a_command_the_protocol_lacks_is_refused_unsent_in_words(client) -> None:
    """Bambu's LAN protocol has no emergency stop: a posted one is refused and recorded, never sent."""
    client.force_login(UserFactory())
    printer = set_status(PrinterFactory(protocol="bambu", serial="01P00A000000001"), State.PRINTING)
    response = client.post(reverse("printers:command", args=[printer.pk, "emergency-stop"]), **HX)
    answer = "Bambu Lab (LAN) printers have no “E-stop” command"
    assert f'<p class="card-result err" role="status">{answer}</p>' in response.content.decode()
    event = printer.events.filter(kind=PrinterEvent.Kind.COMMAND).get()
    assert event.message == f"E-stop not sent: {answer}"
    operator, _ = api_client(Role.OPERATOR)
    refused = operator.post(f"/api/v1/printers/{printer.pk}/commands/emergency-stop")
    assert refused.status_code == 409 and refused.json()["message"] == answer


def card_buttons(body: str, printer: Printer) -> list[str]:
    card = re.search(rf'<article id="printer-card-{printer.pk}".*?</article>', body, re.S)
    assert card is not None
    return re.findall(r'hx-post="/printers/\d+/command/([a-z-]+)/"', card.group(0))


@pytest.mark.django_db
def test_card_shows_only_the_buttons_its_state_can_use(client) -> None:
    client.force_login(UserFactory())
    printers = {}
    for state in State:
        if state == State.MAINTENANCE:
            printers[state] = PrinterFactory(enabled=False)
        else:
            printers[state] = set_status(PrinterFactory(), state, message="Klipper not ready: startup")
    body = client.get(reverse("printers:dashboard")).content.decode()
    for state, printer in printers.items():
        assert card_buttons(body, printer) == BUTTONS[state], state
    detail = client.get(reverse("printers:detail", args=[printers[State.PAUSED].pk])).content.decode()
    assert card_buttons(detail, printers[State.PAUSED]) == BUTTONS[State.PAUSED]


REFUSALS = [
    (State.IDLE, "pause", "Nothing is printing"),
    (State.FINISHED, "cancel", "Nothing is printing"),
    (State.IDLE, "resume", "Nothing is printing"),
    (State.PAUSED, "pause", "The print is already paused"),
    (State.PRINTING, "resume", "The print is not paused"),
    (State.PRINTING, "preheat-pla", "Not while a print is running"),
    (State.PAUSED, "cooldown", "Not while a print is running"),
    (State.CONNECTING, "preheat-pla", "The printer is still connecting: Klipper not ready: startup"),
    (State.CONNECTING, "emergency-stop", "The printer is still connecting: Klipper not ready: startup"),
    (State.OFFLINE, "emergency-stop", "The printer is offline: Klipper not ready: startup"),
    (State.ERROR, "cooldown", "The printer is in error: Klipper not ready: startup"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("state", "name", "answer"), REFUSALS)
def test_command_posted_for_a_state_that_cannot_use_it_is_refused_unsent(
    client, state: State, name: str, answer: str
) -> None:
    user = UserFactory()
    client.force_login(user)
    with running_farm(count=1, protocol="moonraker", speed=60) as farm:
        sim = farm.printers[0]
        printer = PrinterFactory(protocol=sim.protocol, base_url=sim.base_url)
        set_status(printer, state, message="Klipper not ready: startup")
        before = farm.stats_counters.requests
        response = client.post(reverse("printers:command", args=[printer.pk, name]), **HX)
        assert farm.stats_counters.requests == before  # the printer was never asked
        hotend_target = sim.extruder.target
    body = response.content.decode()
    assert f'<p class="card-result err" role="status">{answer}</p>' in body
    assert hotend_target == 0
    event = printer.events.filter(kind=PrinterEvent.Kind.COMMAND).get()
    assert event.message == f"{COMMANDS[name].label} not sent: {answer}"
    assert event.by == user.username


@pytest.mark.django_db
def test_command_refused_over_the_api_says_why() -> None:
    operator, _ = api_client(Role.OPERATOR)
    printer = set_status(PrinterFactory(), State.IDLE)
    response = operator.post(f"/api/v1/printers/{printer.pk}/commands/pause")
    assert response.status_code == 409
    assert response.json() == {"ok": False, "message": "Nothing is printing"}


@pytest.mark.django_db
def test_card_preheat_on_a_moonraker_whose_klipper_went_away_says_so(client) -> None:
    """The card still reads idle (the poller has not seen it yet); the printer's answer says
    what is wrong instead of an HTTP status."""
    client.force_login(UserFactory())
    with running_farm(count=1, protocol="moonraker", speed=60) as farm:
        sim = farm.printers[0]
        printer = set_status(PrinterFactory(protocol=sim.protocol, base_url=sim.base_url), State.IDLE)
        farm.set_fault(0, "not_ready")
        response = client.post(reverse("printers:command", args=[printer.pk, "preheat-pla"]), **HX)
    body = response.content.decode()
    assert 'class="card-result err"' in body
    assert "Klipper is not ready: Moonraker has no connection to Klipper" in body
    assert "HTTP 404" not in body


@pytest.mark.django_db
def test_bambu_card_offers_its_light_switch_and_no_emergency_stop(client) -> None:
    client.force_login(UserFactory())
    printer = set_status(
        PrinterFactory(protocol="bambu", serial="01P00A000000002"), State.PRINTING, light=True
    )
    body = client.get(reverse("printers:dashboard")).content.decode()
    assert card_buttons(body, printer) == ["pause", "cancel", "light-off"]
    set_status(printer, State.IDLE, light=False)
    detail = client.get(reverse("printers:detail", args=[printer.pk])).content.decode()
    assert card_buttons(detail, printer) == [*PREHEATS, "light-on"]
    operator, _ = api_client(Role.OPERATOR)
    assert operator.get(f"/api/v1/printers/{printer.pk}").json()["commands"] == [*PREHEATS, "light-on"]
