"""Printer pages: the dashboard and wall, detail, add/edit/delete, test connection, card commands.

Views that talk to a printer (commands, test connection, the check after saving) are async
so that a slow printer holds only its own request: under daphne every sync view shares
one thread per process. Their ORM work and page rendering (context processors read the
session) run through sync_to_async.
"""

from __future__ import annotations

import datetime as dt
import logging

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import aget_object_or_404, get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from printers import realtime, thumbnails
from printers.bulk import bulk_choices
from printers.camera_sources import camera_source
from printers.cameras import camera_fill
from printers.cards import render_grid_cards
from printers.commands import COMMANDS, Outcome, command_send, connection_probe, printer_config
from printers.drivers import DriverConfig
from printers.drivers.base import address_shown
from printers.finding import Section, arrange, natural_key
from printers.forms import ConnectionTestForm, PrinterForm
from printers.models import Printer, Tag
from printers.presenters import (
    DashboardFilters,
    beds_waiting_count,
    card_for,
    cards_for,
    state_counts,
    temperature_chart,
)
from printers.services import (
    printer_bed_set,
    printer_create,
    printer_delete,
    printer_update,
)
from printfarm.accounts.roles import admin_required, operator_required, role_of, viewer_required
from printfarm.web import HtmxHttpRequest, render_fragment_or_page, safe_next, wants_fragment

logger = logging.getLogger(__name__)

CHART_SPAN = dt.timedelta(hours=1)
EVENTS_SHOWN = 50
SAVE_PROBE_TIMEOUT = 3.0
# The dashboard's sort and group menus: (value, label), values from printers.finding.
SORT_CHOICES = (("name", "Name"), ("state", "State"), ("end", "End time"), ("attention", "Attention"))
GROUP_CHOICES = (("", "No groups"), ("tag", "Tag"), ("location", "Location"))


arender = sync_to_async(render)


# -- dashboard ------------------------------------------------------------------------------


@viewer_required
@require_GET
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    filters = DashboardFilters.from_query(request.GET)
    socket_url = realtime.socket_url("wall" if filters.wall else "cards")  # before the cards are read
    printers = Printer.objects.for_cards()
    if filters.state:
        printers = printers.in_state(filters.state)
    if filters.tag:
        printers = printers.tagged(filters.tag)
    counts, total = state_counts()
    tag_names = Tag.objects.filter(printers__isnull=False).distinct().values_list("name", flat=True)
    # Searched, sorted and grouped in Python, on the cards' own keys (printers.finding): the
    # job's file is another app's, and the page's script checks pushed cards by the same keys.
    sections = arrange(cards_for(printers), query=filters.q, sort=filters.sort, group=filters.group)
    sections = sections or [Section(label="", key="", cards=())]  # no groups: the empty grid says why
    context = {
        "filters": filters,
        "sections": [
            (section, render_grid_cards(section.cards, request=request, wall=filters.wall))
            for section in sections
        ],
        "counts": counts,
        "total": total,
        "beds": beds_waiting_count(),
        "bulk_actions": bulk_choices(admin=role_of(request.user) == "admin"),
        "tag_links": filters.tag_links(sorted(tag_names, key=natural_key)) if tag_names else [],
        "view_links": filters.view_links(),
        "density_links": filters.density_links(),
        "sort_choices": SORT_CHOICES,
        "group_choices": GROUP_CHOICES,
        "all_states_href": filters.href(state=""),
        "socket_url": socket_url,
    }
    return render_fragment_or_page(request, "printers/dashboard.html", "printer-grid", context)


# -- detail ---------------------------------------------------------------------------------


@viewer_required
@require_GET
def printer_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    socket_url = realtime.socket_url()  # before the card is read
    printer = get_object_or_404(Printer.objects.with_status(), pk=pk)
    now = timezone.now()
    samples = list(printer.temperature_samples.filter(at__gte=now - CHART_SPAN).order_by("at"))
    camera = camera_source(printer)
    context = {
        "printer": printer,
        "address": address_shown(printer.base_url),
        "card": card_for(printer, now=now),
        "chart": temperature_chart(samples, now=now, span=CHART_SPAN),
        "events": printer.events.all()[:EVENTS_SHOWN],
        # Whether it has a camera, never its URLs: the page shows our relay (printers.camera_views).
        "camera_stream": bool(camera.stream),
        "camera_snapshot": bool(camera.snapshot),
        "camera_note": camera.note,
        "socket_url": socket_url,
    }
    return render(request, "printers/printer_detail.html", context)


@viewer_required
@require_GET
def printer_thumbnail(request: HttpRequest, pk: int, key: str) -> FileResponse:
    """The printer's own image of a file it prints (printers.thumbnails), from the server's
    copy: a browser never asks a printer, and a page never waits on one."""
    get_object_or_404(Printer, pk=pk)
    found = thumbnails.cached(key)
    if found is None:
        raise Http404("No such thumbnail")
    path, content_type = found
    try:
        file = path.open("rb")
    except OSError:  # pruned since: only the newest images are kept
        raise Http404("No such thumbnail") from None
    response = FileResponse(file, content_type=content_type)
    # The key names the file's size and time: these bytes never change under it.
    response["Cache-Control"] = "private, max-age=86400, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    return response


# -- add / edit / delete --------------------------------------------------------------------


def _form_page(
    request: HttpRequest,
    form: PrinterForm,
    printer: Printer | None,
    outcome: Outcome | None = None,
) -> HttpResponse:
    test_url = (
        reverse("printers:test_connection", args=[printer.pk])
        if printer
        else reverse("printers:test_connection")
    )
    context = {"form": form, "printer": printer, "outcome": outcome, "test_url": test_url}
    return render(request, "printers/printer_form.html", context)


def _save(form: PrinterForm, printer: Printer | None, by: object) -> Printer | None:
    """Validate (the unique-name check queries) and save through the services (which audit)."""
    if not form.is_valid():
        return None
    tags = form.cleaned_data["tags"]
    if printer is None:
        return printer_create(fields=form.printer_fields(), tags=tags, by=by)
    # The form wrote the new values onto its instance while validating; the service
    # compares against the stored row to know what changed.
    current = get_object_or_404(Printer, pk=printer.pk)
    return printer_update(printer=current, fields=form.printer_fields(), tags=tags, by=by)


async def _check_after_save(request: HttpRequest, printer: Printer, *, find_camera: bool = True) -> None:
    """Probe the saved printer; `find_camera`: a new printer or address, so look for its webcam
    too (not on other edits: an admin who removed the camera would get it back)."""
    if not printer.enabled:
        messages.success(request, f"Saved {printer.name}. It is disabled, so it won't be polled.")
        return
    outcome = await connection_probe(
        protocol=printer.protocol, config=printer_config(printer), timeout=SAVE_PROBE_TIMEOUT
    )
    camera = ""
    if outcome.ok and find_camera:
        camera = await _find_camera(printer)
    if outcome.ok:
        messages.success(request, f"Saved {printer.name}. {outcome.message}.{camera}")
    else:
        reason = outcome.message.rstrip(".")
        end = "" if reason.endswith(("?", "!")) else "."
        messages.warning(
            request,
            f"Saved, but we couldn't reach it: {reason}{end} It will show as offline until it answers.",
        )


async def _find_camera(printer: Printer) -> str:
    """What to add to the "Saved" message about the webcam the printer reports, if any."""
    shown = await camera_fill(printer)
    return f" Found its camera ({shown})." if shown else ""


@admin_required
@require_http_methods(["GET", "POST"])
async def printer_add(request: HtmxHttpRequest) -> HttpResponse:
    form = PrinterForm(request.POST if request.method == "POST" else None)
    if form.is_bound:
        user = await request.auser()
        printer = await sync_to_async(_save)(form, None, user)
        if printer is not None:
            await _check_after_save(request, printer)
            return redirect(printer)
    return await sync_to_async(_form_page)(request, form, None)


@admin_required
@require_http_methods(["GET", "POST"])
async def printer_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    printer = await aget_object_or_404(Printer, pk=pk)
    data = request.POST if request.method == "POST" else None
    form = await sync_to_async(PrinterForm)(data, instance=printer)  # reads the tags
    if form.is_bound:
        user = await request.auser()
        saved = await sync_to_async(_save)(form, printer, user)
        if saved is not None:
            moved = "base_url" in form.changed_data or "protocol" in form.changed_data
            await _check_after_save(request, saved, find_camera=moved)
            return redirect(saved)
    return await sync_to_async(_form_page)(request, form, printer)


@admin_required
@require_http_methods(["GET", "POST"])
async def printer_delete_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    printer = await aget_object_or_404(Printer, pk=pk)
    if request.method == "GET":
        return await arender(request, "printers/printer_confirm_delete.html", {"printer": printer})
    name = printer.name
    user = await request.auser()
    await sync_to_async(printer_delete)(printer=printer, by=user)
    logger.info("Printer %s (%s) deleted by %s", pk, name, user.get_username())
    messages.success(request, f"Deleted {name}.")
    if wants_fragment(request):
        return HttpResponseClientRedirect(reverse("printers:dashboard"))
    return redirect("printers:dashboard")


# -- talking to printers --------------------------------------------------------------------


@admin_required
@require_POST
async def test_connection(request: HtmxHttpRequest, pk: int | None = None) -> HttpResponse:
    """Probe with the form's current values; on edit a blank key means the stored one."""
    printer = await aget_object_or_404(Printer, pk=pk) if pk is not None else None
    form = ConnectionTestForm(request.POST)
    if form.is_valid():
        key = form.cleaned_data["api_key"]
        # The stored key only ever goes to the stored address: otherwise anyone who can open
        # this form could send it to a host of their own.
        same_printer = printer is not None and (
            form.cleaned_data["base_url"] == printer.base_url
            and form.cleaned_data["protocol"] == printer.protocol
        )
        if not key and same_printer and not form.cleaned_data["clear_api_key"]:
            key = printer.api_key
        config = DriverConfig(
            base_url=form.cleaned_data["base_url"],
            api_key=key,
            username=form.cleaned_data["username"],
            serial=form.cleaned_data["serial"],
            # A pinned certificate belongs to the stored address and serial only.
            certificate_pin=printer.certificate_pin
            if printer is not None and same_printer and printer.serial == form.cleaned_data["serial"]
            else "",
        )
        outcome = await connection_probe(protocol=form.cleaned_data["protocol"], config=config)
    else:
        problems = [
            f"{form.fields[name].label or name}: {' '.join(errors)}" for name, errors in form.errors.items()
        ]
        outcome = Outcome(ok=False, message="Can't test yet — " + "; ".join(problems))
    if wants_fragment(request):
        return await arender(request, "printers/printer_form.html#connection-result", {"outcome": outcome})

    def page() -> HttpResponse:  # without JS: the whole form again, with the result
        return _form_page(request, PrinterForm(request.POST, instance=printer), printer, outcome)

    return await sync_to_async(page)()


def _card_response(request: HttpRequest, pk: int, outcome: Outcome) -> HttpResponse:
    printer = get_object_or_404(Printer.objects.with_status(), pk=pk)
    context = {"card": card_for(printer), "result": outcome}
    return render(request, "printers/dashboard.html#printer-card", context)


@operator_required
@require_POST
async def printer_command(request: HtmxHttpRequest, pk: int, name: str) -> HttpResponse:
    command = COMMANDS.get(name)
    if command is None:
        raise Http404(f"No command {name!r}")
    printer = await aget_object_or_404(Printer, pk=pk)
    user = await request.auser()
    outcome = await command_send(printer=printer, command=command, by=user)
    if wants_fragment(request):
        return await sync_to_async(_card_response)(request, pk, outcome)
    level = messages.SUCCESS if outcome.ok else messages.ERROR
    messages.add_message(request, level, f"{printer.name}: {outcome.message}")
    return HttpResponseRedirect(safe_next(request, reverse("printers:dashboard")))


@operator_required
@require_POST
def bed_cleared(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The operator took the print off: the printer may take its next job."""
    printer = get_object_or_404(Printer, pk=pk)
    printer_bed_set(printer.pk, clear=True, by=request.user)
    if wants_fragment(request):
        outcome = Outcome(ok=True, message="Bed marked clear: the next job can start.")
        return _card_response(request, pk, outcome)
    messages.success(request, f"{printer.name}: bed marked clear.")
    return redirect(safe_next(request, reverse("printers:dashboard")))


# -- poller health --------------------------------------------------------------------------


@require_GET
def poller_health_banner(request: HttpRequest) -> HttpResponse:
    """The "is the poller running?" banner alone, for its own refresh every 10 s."""
    if role_of(request.user) is None:
        # 286 stops htmx's polling: a signed-out tab is not sent to the login page behind
        # the user's back (the next click gets there).
        return HttpResponse(status=286)
    return render(request, "printers/poller_health.html")
