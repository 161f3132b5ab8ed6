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
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import aget_object_or_404, get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from printers.cards import render_grid_cards
from printers.commands import COMMANDS, Outcome, command_send, connection_probe
from printers.drivers.base import address_shown
from printers.forms import ConnectionTestForm, PrinterForm
from printers.models import Printer, Tag
from printers.presenters import DashboardFilters, card_for, cards_for, state_counts, temperature_chart
from printers.realtime import apublish_changes
from printers.services import printer_create, printer_delete, printer_update
from printfarm.accounts.audit import audit_record
from printfarm.accounts.roles import admin_required, operator_required, viewer_required

logger = logging.getLogger(__name__)

CHART_SPAN = dt.timedelta(hours=1)
EVENTS_SHOWN = 50
SAVE_PROBE_TIMEOUT = 3.0


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


arender = sync_to_async(render)
aaudit_record = sync_to_async(audit_record)


def _wants_fragment(request: HtmxHttpRequest) -> bool:
    # A history restore after a cache miss asks for the whole page, HX-Request or not.
    return bool(request.htmx) and not request.htmx.history_restore_request


# -- dashboard ------------------------------------------------------------------------------


@viewer_required
@require_GET
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    filters = DashboardFilters.from_query(request.GET)
    printers = Printer.objects.with_status()
    if filters.state:
        printers = printers.in_state(filters.state)
    if filters.tag:
        printers = printers.tagged(filters.tag)
    counts, total = state_counts()
    tag_names = Tag.objects.filter(printers__isnull=False).distinct().values_list("name", flat=True)
    context = {
        "filters": filters,
        "cards_html": render_grid_cards(cards_for(printers), request=request, wall=filters.wall),
        "counts": counts,
        "total": total,
        "tag_links": filters.tag_links(tag_names) if tag_names else [],
        "view_links": filters.view_links(),
        "all_states_href": filters.href(state=""),
    }
    template_name = "printers/dashboard.html"
    if _wants_fragment(request):
        template_name += "#printer-grid"
    response = render(request, template_name, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


# -- detail ---------------------------------------------------------------------------------


@viewer_required
@require_GET
def printer_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    printer = get_object_or_404(Printer.objects.with_status(), pk=pk)
    now = timezone.now()
    samples = list(printer.temperature_samples.filter(at__gte=now - CHART_SPAN).order_by("at"))
    context = {
        "printer": printer,
        "address": address_shown(printer.base_url),
        "card": card_for(printer, now=now),
        "chart": temperature_chart(samples, now=now, span=CHART_SPAN),
        "events": printer.events.all()[:EVENTS_SHOWN],
    }
    return render(request, "printers/printer_detail.html", context)


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


def _changes(form: PrinterForm) -> str:
    # Field names only (the API key's value never goes into the log), and where it now points.
    changed = ", ".join(form.changed_data) or "nothing"
    if "base_url" in form.changed_data:
        changed += f" (address now {form.cleaned_data['base_url']})"
    return f"changed: {changed}"


def _save(form: PrinterForm, printer: Printer | None, by: str) -> Printer | None:
    """Validate (the unique-name check queries) and save through the services."""
    if not form.is_valid():
        return None
    tags = form.cleaned_data["tags"]
    if printer is None:
        return printer_create(fields=form.printer_fields(), tags=tags, by=by)
    # The form wrote the new values onto its instance while validating; the service
    # compares against the stored row to know what changed.
    current = get_object_or_404(Printer, pk=printer.pk)
    return printer_update(printer=current, fields=form.printer_fields(), tags=tags, by=by)


async def _check_after_save(request: HttpRequest, printer: Printer) -> None:
    if not printer.enabled:
        messages.success(request, f"Saved {printer.name}. It is disabled, so it won't be polled.")
        return
    outcome = await connection_probe(
        protocol=printer.protocol,
        base_url=printer.base_url,
        api_key=printer.api_key,
        timeout=SAVE_PROBE_TIMEOUT,
    )
    if outcome.ok:
        messages.success(request, f"Saved {printer.name}. {outcome.message}.")
    else:
        reason = outcome.message.rstrip(".")
        end = "" if reason.endswith(("?", "!")) else "."
        messages.warning(
            request,
            f"Saved, but we couldn't reach it: {reason}{end} It will show as offline until it answers.",
        )


@admin_required
@require_http_methods(["GET", "POST"])
async def printer_add(request: HtmxHttpRequest) -> HttpResponse:
    form = PrinterForm(request.POST if request.method == "POST" else None)
    if form.is_bound:
        user = await request.auser()
        printer = await sync_to_async(_save)(form, None, user.get_username())
        if printer is not None:
            await aaudit_record(user, "printer.add", target=printer, detail=printer.base_url)
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
        saved = await sync_to_async(_save)(form, printer, user.get_username())
        if saved is not None:
            await aaudit_record(user, "printer.edit", target=saved, detail=_changes(form))
            await apublish_changes([saved.pk])  # with Redis; the change feed finds it otherwise
            await _check_after_save(request, saved)
            return redirect(saved)
    return await sync_to_async(_form_page)(request, form, printer)


def _delete(printer: Printer, user: object) -> None:
    # Recorded first (the row still has its pk), in one transaction with the delete.
    with transaction.atomic():
        audit_record(user, "printer.delete", target=printer)
        printer_delete(printer=printer)


@admin_required
@require_http_methods(["GET", "POST"])
async def printer_delete_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    printer = await aget_object_or_404(Printer, pk=pk)
    if request.method == "GET":
        return await arender(request, "printers/printer_confirm_delete.html", {"printer": printer})
    name = printer.name
    user = await request.auser()
    await sync_to_async(_delete)(printer, user)
    await apublish_changes([pk])  # with Redis, open dashboards drop the card
    logger.info("Printer %s (%s) deleted by %s", pk, name, user.get_username())
    messages.success(request, f"Deleted {name}.")
    if request.htmx:
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
        outcome = await connection_probe(
            protocol=form.cleaned_data["protocol"], base_url=form.cleaned_data["base_url"], api_key=key
        )
    else:
        problems = [
            f"{form.fields[name].label or name}: {' '.join(errors)}" for name, errors in form.errors.items()
        ]
        outcome = Outcome(ok=False, message="Can't test yet — " + "; ".join(problems))
    if _wants_fragment(request):
        return await arender(request, "printers/printer_form.html#connection-result", {"outcome": outcome})

    def page() -> HttpResponse:  # without JS: the whole form again, with the result
        return _form_page(request, PrinterForm(request.POST, instance=printer), printer, outcome)

    return await sync_to_async(page)()


def _card_response(request: HttpRequest, pk: int, outcome: Outcome) -> HttpResponse:
    printer = get_object_or_404(Printer.objects.with_status(), pk=pk)
    context = {"card": card_for(printer), "result": outcome}
    return render(request, "printers/dashboard.html#printer-card", context)


def _back(request: HttpRequest) -> str:
    referer = request.headers.get("referer", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return referer
    return reverse("printers:dashboard")


@operator_required
@require_POST
async def printer_command(request: HtmxHttpRequest, pk: int, name: str) -> HttpResponse:
    command = COMMANDS.get(name)
    if command is None:
        raise Http404(f"No command {name!r}")
    printer = await aget_object_or_404(Printer, pk=pk)
    user = await request.auser()
    outcome = await command_send(printer=printer, command=command, by=user.get_username())
    await aaudit_record(user, "printer.command", target=printer, detail=f"{command.name}: {outcome.message}")
    if request.htmx:
        return await sync_to_async(_card_response)(request, pk, outcome)
    level = messages.SUCCESS if outcome.ok else messages.ERROR
    messages.add_message(request, level, f"{printer.name}: {outcome.message}")
    return HttpResponseRedirect(_back(request))
