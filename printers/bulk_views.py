"""The dashboard's bulk actions: one action on the selected printers, and "Clear all finished
beds"; a result line per printer (htmx) or a summary message (a plain form post)."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from printers import bulk
from printfarm.accounts.models import Role
from printfarm.accounts.roles import RoleDenied, allows, operator_required, role_of
from printfarm.web import HtmxHttpRequest, safe_next, wants_fragment

arender = sync_to_async(render)


def _ids(request: HtmxHttpRequest) -> list[int]:
    return [int(v) for v in request.POST.getlist("printer") if v.isascii() and v.isdigit()][
        : bulk.MAX_PRINTERS
    ]


async def _answer(request: HtmxHttpRequest, action: str, results: list[bulk.BulkResult]) -> HttpResponse:
    failed = [r for r in results if not r.ok]
    label = bulk.action_label(action)
    summary = f"{label}: done on {len(results) - len(failed)} of {len(results)} printer(s)"
    if wants_fragment(request):
        context = {"action": label, "summary": summary, "results": results, "failed": len(failed)}
        return await arender(request, "printers/bulk_results.html", context)
    if failed:
        details = "; ".join(f"{r.name or r.printer_id}: {r.message}" for r in failed[:10])
        messages.warning(request, f"{summary}. Not done — {details}")
    else:
        messages.success(request, f"{summary}.")
    return redirect(safe_next(request, reverse("printers:dashboard")))


@operator_required
@require_POST
async def bulk_action_view(request: HtmxHttpRequest) -> HttpResponse:
    action = request.POST.get("action", "")
    if action not in bulk.ACTIONS:
        return HttpResponse(f"No action {action!r}.", status=400, content_type="text/plain")
    user = await request.auser()
    needed = Role.ADMIN if bulk.needs_admin(action) else Role.OPERATOR
    if not await sync_to_async(allows)(user, needed):
        raise RoleDenied(needed, await sync_to_async(role_of)(user))
    ids = _ids(request)
    if not ids:
        return HttpResponse("Select at least one printer.", status=400, content_type="text/plain")
    results = await bulk.bulk_action(action=action, printer_ids=ids, by=user)
    return await _answer(request, action, results)


@operator_required
@require_POST
async def clear_beds_view(request: HtmxHttpRequest) -> HttpResponse:
    user = await request.auser()
    ids = await sync_to_async(bulk.beds_waiting)()
    results = await bulk.bulk_action(action=bulk.BED_CLEARED, printer_ids=ids, by=user)
    return await _answer(request, bulk.BED_CLEARED, results)
