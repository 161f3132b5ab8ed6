"""The notifications pages and API: admins only, write-only URLs, malformed URLs refused with a
field error, "Send test" showing the channel's answer, and the log."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from notifications.models import Channel, Delivery, EventKind, Rule
from notifications.services import channel_save
from notifications.tests.helpers import free_port
from printers.models import Tag
from printers.tests.factories import UserFactory
from printfarm.accounts.models import AuditEntry, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook_channel(webhook) -> Channel:
    return channel_save(name="hook", url=webhook.url + "?token=s3cr3t-t0ken-value")


def test_a_channel_url_is_stored_encrypted_and_shown_masked(web, webhook):
    url = "mailto://farm:hunter2-password@127.0.0.1:2525?from=farm@example.com&to=ops@example.com"
    response = web.post(reverse("notifications:channel_add"), {"name": "mail", "url": url, "enabled": "on"})
    assert response.status_code == 302
    channel = Channel.objects.get()
    assert channel.url == url and channel.service == "E-Mail"
    with connection.cursor() as cursor:
        cursor.execute("SELECT url FROM notifications_channel")
        (raw,) = cursor.fetchone()
    assert "hunter2" not in raw
    page = web.get(reverse("notifications:page")).content.decode()
    assert "hunter2" not in page and "mailto://" in page
    edit = web.get(reverse("notifications:channel_edit", args=[channel.pk])).content.decode()
    assert "hunter2" not in edit
    assert AuditEntry.objects.filter(action="notification_channel.create").exists()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("not a url", "has no scheme"),
        ("nosuchservice://host/path", "nosuchservice:// is not a service Apprise knows"),
        ("discord://", "Discord Webhook ID"),
        ("mailto://127.0.0.1?from=not-an-address", "From"),
    ],
)
def test_a_malformed_url_is_a_field_error_naming_the_problem(web, url, says):
    response = web.post(reverse("notifications:channel_add"), {"name": "bad", "url": url})
    assert response.status_code == 422
    errors = response.context["form"].errors["url"]
    assert says in errors[0]
    assert not Channel.objects.exists()


def test_editing_a_channel_with_a_blank_url_keeps_the_stored_one(web, hook_channel):
    url = hook_channel.url
    response = web.post(
        reverse("notifications:channel_edit", args=[hook_channel.pk]), {"name": "renamed", "url": ""}
    )
    assert response.status_code == 302
    hook_channel.refresh_from_db()
    assert hook_channel.name == "renamed" and hook_channel.url == url


def test_send_test_shows_the_channels_answer(web, webhook, hook_channel):
    response = web.post(reverse("notifications:channel_test", args=[hook_channel.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="test-result-{hook_channel.pk}"' in html and "Sent" in html
    assert "Sent JSON POST notification" in html
    assert webhook.titles() == ["printfarm test message"]
    delivery = Delivery.objects.get()
    assert delivery.state == Delivery.State.SENT and delivery.tries.get().ok


def test_send_test_to_a_channel_that_is_down_shows_why(web):
    channel = channel_save(name="down", url=f"json://127.0.0.1:{free_port()}/hook")
    response = web.post(reverse("notifications:channel_test", args=[channel.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Not sent" in html and "Connection error" in html
    assert Delivery.objects.get().state == Delivery.State.FAILED


def test_rules_are_added_with_kinds_tags_and_quiet_hours(web, hook_channel):
    tag = Tag.objects.create(name="lab")
    form = {
        "name": "lab failures",
        "kinds": [EventKind.PRINT_FAILED, EventKind.PRINTER_ERROR],
        "tags": [tag.pk],
        "channels": [hook_channel.pk],
        "quiet_start": "22:00",
        "quiet_end": "07:00",
        "quiet_action": "hold",
        "digest_seconds": "120",
        "offline_minutes": "10",
        "enabled": "on",
    }
    assert web.post(reverse("notifications:rule_add"), form).status_code == 302
    rule = Rule.objects.get()
    assert rule.kinds == ["print_failed", "printer_error"]
    assert list(rule.tags.all()) == [tag] and list(rule.channels.all()) == [hook_channel]
    page = web.get(reverse("notifications:page")).content.decode()
    assert "lab failures" in page and "22:00–07:00" in page

    half = {**form, "quiet_end": ""}
    response = web.post(reverse("notifications:rule_edit", args=[rule.pk]), half)
    assert response.status_code == 422
    assert "both a start and an end" in str(response.context["form"].errors["quiet_end"])


def test_the_log_lists_messages_newest_first_with_their_answers(web, webhook, hook_channel):
    for _ in range(3):
        web.post(reverse("notifications:channel_test", args=[hook_channel.pk]))
    page = web.get(reverse("notifications:log")).content.decode()
    assert "3 messages, newest first" in page and "<title>Notification log" in page
    fragment = web.get(reverse("notifications:log"), HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<section id="log-results"')
    assert fragment.count("Sent JSON POST notification") == 3


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_only_admins_see_or_change_notifications(client, role, hook_channel):
    client.force_login(UserFactory(role=role))
    for name, args in [("page", []), ("log", []), ("channel_add", []), ("rule_add", [])]:
        assert client.get(reverse(f"notifications:{name}", args=args)).status_code == 403
    assert client.post(reverse("notifications:channel_test", args=[hook_channel.pk])).status_code == 403
    assert client.post(reverse("notifications:channel_delete", args=[hook_channel.pk])).status_code == 403
    assert Channel.objects.exists() and not Delivery.objects.exists()
    assert client.get("/api/v1/notifications/channels").status_code == 403
    assert client.get("/api/v1/notifications/log").status_code == 403


def test_the_api_adds_lists_tests_and_deletes_channels_and_rules(web, webhook):
    response = web.post(
        "/api/v1/notifications/channels",
        {"name": "hook", "url": webhook.url + "?token=abcdefgh12345678"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    channel = response.json()
    assert "abcdefgh12345678" not in channel["url"] and channel["service"] == "JSON"

    bad = web.post(
        "/api/v1/notifications/channels", {"name": "bad", "url": "foo://bar"}, content_type="application/json"
    )
    assert bad.status_code == 422
    assert "foo:// is not a service Apprise knows" in bad.json()["fields"]["url"][0]

    tested = web.post(f"/api/v1/notifications/channels/{channel['id']}/test")
    assert tested.status_code == 200 and tested.json()["ok"] is True
    assert "Sent JSON POST notification" in tested.json()["answer"]

    rule = web.post(
        "/api/v1/notifications/rules",
        {"name": "all", "kinds": ["print_failed"], "channels": [channel["id"]], "digest_seconds": 30},
        content_type="application/json",
    )
    assert rule.status_code == 201, rule.content
    assert rule.json()["kinds"] == ["print_failed"] and rule.json()["channels"] == [channel["id"]]
    bad_rule = web.post(
        "/api/v1/notifications/rules",
        {"name": "x", "kinds": ["print_failed"], "channels": [channel["id"]], "tags": ["nope"]},
        content_type="application/json",
    )
    assert bad_rule.status_code == 422 and "nope" in bad_rule.json()["fields"]["tags"][0]

    log = web.get("/api/v1/notifications/log").json()
    assert log["count"] == 1 and log["items"][0]["tries"][0]["ok"] is True

    assert web.delete(f"/api/v1/notifications/rules/{rule.json()['id']}").status_code == 204
    assert web.delete(f"/api/v1/notifications/channels/{channel['id']}").status_code == 204
    assert not Channel.objects.exists() and not Rule.objects.exists()
