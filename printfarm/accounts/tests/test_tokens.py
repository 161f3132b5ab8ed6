"""The API tokens page: the secret is shown once and never stored; revoking is one's own."""

from __future__ import annotations

import pytest
from django.urls import reverse

from printers.tests.factories import PrinterFactory, UserFactory
from printfarm.accounts.models import ApiToken, AuditEntry, Role
from printfarm.accounts.tokens import token_create, token_user

pytestmark = pytest.mark.django_db


def test_a_new_token_is_shown_once_and_only_its_digest_is_kept(login):
    viewer = login(Role.VIEWER)  # a viewer may have tokens: they act with the viewer role
    printer = PrinterFactory(name="prusa-1")
    response = viewer.post(reverse("accounts:tokens"), {"name": "PrusaSlicer", "printer": printer.pk})
    assert response.status_code == 200
    secret = response.context["new"].secret
    html = response.content.decode()
    assert secret in html and "won't be shown again" in html
    assert "no-store" in response["Cache-Control"]

    token = ApiToken.objects.get()
    assert (token.user, token.name, token.printer) == (viewer.user, "PrusaSlicer", printer)
    stored = [str(v) for v in ApiToken.objects.values_list().get()]
    # maxsplit: the random part may itself hold "_" (a short fragment would match by chance)
    assert not any(secret in value or secret.split("_", 2)[2] in value for value in stored)
    assert token_user(secret) == (viewer.user, token)

    again = viewer.get(reverse("accounts:tokens")).content.decode()
    assert secret not in again
    assert f"pf_{token.prefix}_…" in again and "PrusaSlicer" in again and "prusa-1" in again
    entry = AuditEntry.objects.get(action="token.create")
    assert secret not in entry.detail and entry.target_type == "token"


def test_the_page_says_how_to_use_a_token(login):
    page = login(Role.OPERATOR).get(reverse("accounts:tokens")).content.decode()
    assert "Authorization: Bearer" in page
    assert "http://testserver/api/v1/" in page
    assert "OctoPrint" in page and "http://testserver/" in page


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ({"name": ""}, "This field is required."),
        ({"name": "x", "printer": "999"}, "Select a valid choice"),
    ],
)
def test_token_form_errors(login, data, text):
    response = login(Role.VIEWER).post(reverse("accounts:tokens"), data)
    assert text in response.content.decode()
    assert response.context["new"] is None
    assert not ApiToken.objects.exists()


def test_a_printer_or_a_tag_not_both(login):
    from printers.models import Tag

    printer = PrinterFactory(tags=["lab"])
    tag = Tag.objects.get(name="lab")
    response = login(Role.VIEWER).post(
        reverse("accounts:tokens"), {"name": "x", "printer": printer.pk, "tag": tag.pk}
    )
    assert "not both" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_revoking_a_token_stops_it(login):
    me = login(Role.VIEWER)
    new = token_create(me.user, "script")
    response = me.post(reverse("accounts:token_revoke", args=[new.token.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("accounts:tokens")
    assert token_user(new.secret) is None
    assert ApiToken.objects.get().revoked_at is not None
    assert "revoked" in response.content.decode()
    assert AuditEntry.objects.filter(action="token.revoke", target_id=str(new.token.pk)).count() == 1
    me.post(reverse("accounts:token_revoke", args=[new.token.pk]))  # again: nothing more to record
    assert AuditEntry.objects.filter(action="token.revoke").count() == 1


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_nobody_but_an_admin_revokes_someone_elses_token(login, role):
    theirs = token_create(UserFactory(role=Role.VIEWER), "theirs")
    response = login(role).post(reverse("accounts:token_revoke", args=[theirs.token.pk]))
    assert response.status_code == 404
    assert token_user(theirs.secret) is not None
    assert not AuditEntry.objects.exists()


def test_an_admin_sees_and_revokes_a_users_tokens_on_their_page(login):
    admin = login(Role.ADMIN)
    ann = UserFactory(username="ann", role=Role.OPERATOR)
    theirs = token_create(ann, "ann's slicer")
    page = admin.get(reverse("accounts:user", args=[ann.pk])).content.decode()
    assert "ann&#x27;s slicer" in page and f"pf_{theirs.token.prefix}_…" in page
    assert theirs.secret not in page
    back = reverse("accounts:user", args=[ann.pk])
    response = admin.post(reverse("accounts:token_revoke", args=[theirs.token.pk]), {"next": back})
    assert response["Location"] == back
    assert token_user(theirs.secret) is None
    entry = AuditEntry.objects.get(action="token.revoke")
    assert entry.user == admin.user and entry.detail == "of ann"


def test_revoke_only_goes_back_to_this_site(login):
    me = login(Role.VIEWER)
    new = token_create(me.user, "x")
    response = me.post(
        reverse("accounts:token_revoke", args=[new.token.pk]), {"next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("accounts:tokens")


def test_revoking_is_a_post(login):
    me = login(Role.VIEWER)
    new = token_create(me.user, "x")
    assert me.get(reverse("accounts:token_revoke", args=[new.token.pk])).status_code == 405
    assert token_user(new.secret) is not None
