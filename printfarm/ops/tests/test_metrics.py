"""/metrics: who may scrape, what it says, and labels that stay bounded."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from jobs.models import Job
from jobs.services import jobs_create
from jobs.tests.factories import make_file
from printers.models import PrinterStatusRow
from printers.state import State
from printers.tests.factories import PrinterFactory, UserFactory, set_status
from printfarm.accounts.models import Role
from printfarm.accounts.tokens import token_create

pytestmark = pytest.mark.django_db

URL = "/metrics"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(client, **headers) -> dict[tuple[str, frozenset], float]:
    response = client.get(URL, **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content.decode())


def value(metrics, name: str, **labels) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


# -- access ---------------------------------------------------------------------------------------


def test_anonymous_gets_401_with_a_bearer_challenge(client):
    response = client.get(URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"printfarm_" not in response.content


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_non_admin_sessions_get_403(client, role):
    client.force_login(UserFactory(role=role))
    response = client.get(URL)
    assert response.status_code == 403
    assert b"printfarm_" not in response.content


def test_admin_session_and_superuser_may_scrape(client, admin_client):
    client.force_login(UserFactory(role=Role.ADMIN))
    assert client.get(URL).status_code == 200
    assert admin_client.get(URL).status_code == 200


def test_admin_token_may_scrape_other_tokens_may_not(client):
    admin_token = token_create(UserFactory(role=Role.ADMIN), "prometheus").secret
    viewer_token = token_create(UserFactory(role=Role.VIEWER), "grafana").secret
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {admin_token}").status_code == 200
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {viewer_token}").status_code == 403
    wrong = client.get(URL, HTTP_AUTHORIZATION="Bearer pf_000000000000_nope")
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong["WWW-Authenticate"]


def test_revoked_token_and_disabled_admin_are_refused(client):
    from printfarm.accounts.tokens import token_revoke

    user = UserFactory(role=Role.ADMIN)
    new = token_create(user, "prometheus")
    token_revoke(new.token)
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {new.secret}").status_code == 401
    other = token_create(user, "prometheus-2").secret
    user.is_active = False
    user.save()
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 401


def test_a_token_wins_over_a_session(client):
    # A bearer header is what the scraper meant: a bad one is refused even with a session.
    client.force_login(UserFactory(role=Role.ADMIN))
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer nonsense").status_code == 401


# -- content --------------------------------------------------------------------------------------


def test_request_counts_and_one_route_label_for_all_printer_pages(admin_client):
    a, b = PrinterFactory(), PrinterFactory()
    before = scrape(admin_client)
    admin_client.get(reverse("printers:detail", args=[a.pk]))
    admin_client.get(reverse("printers:detail", args=[b.pk]))
    admin_client.get("/no/such/page/")
    admin_client.get("/static/css/printfarm.css")
    admin_client.generic("BREW", "/login/")
    after = scrape(admin_client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    count = "printfarm_http_request_duration_seconds_count"
    assert delta(count, route="printers:detail") == 2
    assert delta(count, route="unmatched") == 1
    assert delta(count, route="static") == 1
    assert delta(count, route="ops:metrics") == 1  # the first scrape
    assert delta("printfarm_http_requests_total", method="GET", status="404") == 1
    assert delta("printfarm_http_requests_total", method="other", status="405") == 1  # BREW
    assert delta("printfarm_http_requests_total", method="GET", status="200") == 4
    routes = {dict(labels)["route"] for name, labels in after if name == count}
    assert not any(str(a.pk) in route or "/" in route for route in routes)
    methods = {dict(labels)["method"] for name, labels in after if name == "printfarm_http_requests_total"}
    assert "BREW" not in methods


def test_farm_gauges(admin_client):
    printers = [PrinterFactory() for _ in range(4)]
    set_status(printers[0], State.PRINTING)
    set_status(printers[1], State.IDLE)
    set_status(printers[2], State.OFFLINE)
    PrinterStatusRow.objects.filter(pk=printers[1].pk).update(
        last_seen=timezone.now() - dt.timedelta(seconds=90)
    )
    PrinterStatusRow.objects.filter(pk=printers[0].pk).update(last_seen=timezone.now())
    PrinterStatusRow.objects.filter(pk=printers[2].pk).update(last_seen=None)  # never answered
    file = make_file()
    jobs = jobs_create(file=file, quantity=5)
    Job.objects.filter(pk=jobs[0].pk).update(state=Job.State.PRINTING)
    Job.objects.filter(pk=jobs[1].pk).update(state=Job.State.UPLOADING)
    Job.objects.filter(pk=jobs[2].pk).update(state=Job.State.FAILED)

    metrics = scrape(admin_client)
    assert value(metrics, "printfarm_printers", state="printing") == 1
    assert value(metrics, "printfarm_printers", state="idle") == 1
    assert value(metrics, "printfarm_printers", state="offline") == 1
    assert value(metrics, "printfarm_printers", state="connecting") == 1  # never polled yet
    assert ("printfarm_printers", frozenset({("state", "error")})) in metrics  # zeros are reported
    assert 89 <= value(metrics, "printfarm_printer_status_age_seconds") < 120
    assert value(metrics, "printfarm_jobs", state="queued") == 2
    assert value(metrics, "printfarm_jobs", state="printing") == 1
    assert value(metrics, "printfarm_jobs", state="failed") == 1
    assert value(metrics, "printfarm_jobs", state="completed") == 0
    assert value(metrics, "printfarm_jobs_active") == 2


def test_scrape_is_a_few_queries_whatever_the_farm_size(admin_client, django_assert_max_num_queries):
    for _ in range(20):
        PrinterFactory()
    with django_assert_max_num_queries(6):  # session + user + profile, printer counts, poll age, jobs
        admin_client.get(URL)


def test_openmetrics_when_asked(admin_client):
    response = admin_client.get(URL, HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response["Content-Type"].startswith("application/openmetrics-text")
    body = response.content.decode()
    assert body.rstrip().endswith("# EOF") and body.count("# EOF") == 1
    assert "printfarm_printers" in body and "printfarm_http_requests" in body


def test_multiprocess_mode_sums_the_workers(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR, each worker process writes its counts there and a
    scrape adds them up."""
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "printfarm.test_settings",
    }
    worker = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "for _ in range(3): assert Client().get('/static/css/printfarm.css').status_code == 200\n"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", worker], env=env, cwd=settings.BASE_DIR, check=True, timeout=60)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    metrics = samples(generate_latest(registry).decode())
    assert value(metrics, "printfarm_http_requests_total", method="GET", status="200") == 6
    assert value(metrics, "printfarm_http_request_duration_seconds_count", route="static") == 6
