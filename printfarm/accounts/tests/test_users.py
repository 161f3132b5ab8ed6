"""User management: create (with field errors), change role, disable / enable, the last admin."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections
from django.test import Client
from django.urls import reverse

from printers.tests.factories import PASSWORD, UserFactory
from printfarm.accounts.models import AuditEntry, Profile, Role
from printfarm.accounts.roles import UserChangeRefused, role_of, user_active_set, user_role_set
from printfarm.accounts.tokens import token_create, token_user
from printfarm.asgi import application

pytestmark = pytest.mark.django_db
User = get_user_model()
ALLOW_INACTIVE = ["django.contrib.auth.backends.AllowAllUsersModelBackend"]


def can_log_in(username: str, password: str) -> bool:
    response = Client().post(reverse("login"), {"username": username, "password": password})
    return response.status_code == 302


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# -- creating -----------------------------------------------------------------------------------


def test_creating_a_user_shows_a_generated_password_once(login):
    admin = login(Role.ADMIN)
    response = admin.post(reverse("accounts:user_add"), {"username": "ann", "email": "", "role": "operator"})
    assert response.status_code == 200
    password = response.context["new_password"]
    assert len(password) >= 20
    assert password in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    ann = User.objects.get(username="ann")
    assert role_of(ann) == Role.OPERATOR
    assert ann.check_password(password)
    assert can_log_in("ann", password)
    # Not on any later page.
    assert password not in admin.get(reverse("accounts:user", args=[ann.pk])).content.decode()
    assert password not in admin.get(reverse("accounts:users")).content.decode()
    entry = AuditEntry.objects.get(action="user.create")
    assert (entry.username, entry.target_label, entry.detail) == (admin.user.username, "ann", "role operator")
    assert password not in entry.detail


def test_a_typed_password_is_used_and_not_shown(login):
    admin = login(Role.ADMIN)
    typed = "a long enough pass phrase 42"
    response = admin.post(
        reverse("accounts:user_add"), {"username": "bob", "role": "viewer", "password": typed}
    )
    assert response.status_code == 200
    assert typed not in response.content.decode()
    assert User.objects.get(username="bob").check_password(typed)


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        ({"username": "", "role": "viewer"}, "username", "This field is required."),
        ({"username": "has space", "role": "viewer"}, "username", "Enter a valid username"),
        ({"username": "TAKEN", "role": "viewer"}, "username", "already exists"),
        ({"username": "zed", "role": "boss"}, "role", "Select a valid choice"),
        ({"username": "zed", "role": "viewer", "email": "nope"}, "email", "valid email"),
        ({"username": "zed", "role": "viewer", "password": "zed12"}, "password", "too short"),
    ],
)
def test_creating_a_user_shows_field_errors(login, data, field, text):
    UserFactory(username="taken")
    admin = login(Role.ADMIN)
    before = User.objects.count()
    response = admin.post(reverse("accounts:user_add"), data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert text in " ".join(errors[field])
    assert text in response.content.decode()
    assert User.objects.count() == before
    assert not AuditEntry.objects.exists()


def test_the_user_list_shows_role_access_last_login_and_tokens(login):
    admin = login(Role.ADMIN)
    viewer = UserFactory(username="vera", role=Role.VIEWER)
    token_create(viewer, "one")
    token_create(viewer, "two")
    user_active_set(user=UserFactory(username="gone", role=Role.OPERATOR), active=False)
    page = admin.get(reverse("accounts:users"))
    rows = {row["user"].username: row for row in page.context["rows"]}
    assert rows["vera"]["role"] == Role.VIEWER and rows["vera"]["user"].tokens == 2
    assert rows["gone"]["role"] == Role.OPERATOR and not rows["gone"]["user"].is_active
    assert rows[admin.user.username]["user"].last_login is not None
    html = page.content.decode()
    assert "disabled" in html and "never" in html


# -- role changes -------------------------------------------------------------------------------


def test_changing_a_role_takes_effect_at_once(login):
    admin = login(Role.ADMIN)
    vera = UserFactory(username="vera", role=Role.VIEWER)
    client = Client()
    client.force_login(vera)
    assert client.post(reverse("jobs:reorder"), {"order": "[]"}).status_code == 403
    response = admin.post(reverse("accounts:user_role", args=[vera.pk]), {"role": "operator"})
    assert response.status_code == 302
    assert client.post(reverse("jobs:reorder"), {"order": "[]"}).status_code == 302
    entry = AuditEntry.objects.get(action="user.role")
    assert entry.detail == "viewer → operator"


def test_a_superusers_role_is_not_changed_here(login):
    admin = login(Role.ADMIN)
    root = User.objects.create_superuser("root", "", PASSWORD)
    response = admin.post(reverse("accounts:user_role", args=[root.pk]), {"role": "viewer"}, follow=True)
    assert "superuser" in messages_of(response)[0]
    assert role_of(User.objects.get(pk=root.pk)) == Role.ADMIN


# -- disabling ----------------------------------------------------------------------------------


def test_a_disabled_user_is_logged_out_and_their_tokens_stop_working(login):
    admin = login(Role.ADMIN)
    ann = UserFactory(username="ann", role=Role.OPERATOR)
    ann_browser = Client()
    ann_browser.force_login(ann)
    new = token_create(ann, "slicer")
    assert token_user(new.secret) is not None
    assert ann_browser.get(reverse("jobs:queue")).status_code == 200

    response = admin.post(reverse("accounts:user_disable", args=[ann.pk]), follow=True)
    assert "Disabled ann" in messages_of(response)[0]

    refused = ann_browser.get(reverse("jobs:queue"))
    assert refused.status_code == 302 and refused["Location"].startswith(reverse("login"))
    assert token_user(new.secret) is None
    assert not can_log_in("ann", PASSWORD)
    assert AuditEntry.objects.filter(action="user.disable", target_id=str(ann.pk)).exists()

    admin.post(reverse("accounts:user_enable", args=[ann.pk]))
    assert token_user(new.secret) is not None
    assert can_log_in("ann", PASSWORD)
    assert AuditEntry.objects.filter(action="user.enable", target_id=str(ann.pk)).exists()


def test_a_disabled_users_session_is_refused_even_if_a_backend_lets_it_through(settings, login):
    """Sessions of inactive users resolve with AllowAllUsersModelBackend: role_of still says no."""
    settings.AUTHENTICATION_BACKENDS = ALLOW_INACTIVE
    ann = UserFactory(username="ann", role=Role.ADMIN)
    browser = Client()
    browser.force_login(ann)
    User.objects.filter(pk=ann.pk).update(is_active=False)
    assert browser.get(reverse("printers:dashboard")).status_code == 403
    assert browser.post(reverse("printers:command", args=[1, "pause"])).status_code == 403


@pytest.mark.django_db(transaction=True)
async def test_a_disabled_users_socket_is_refused_even_if_a_backend_lets_it_through(settings):
    settings.AUTHENTICATION_BACKENDS = ALLOW_INACTIVE
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.REDIS_URL = ""
    ann = await sync_to_async(UserFactory)(username="ann", role=Role.ADMIN)
    browser = Client()
    await sync_to_async(browser.force_login)(ann)
    await User.objects.filter(pk=ann.pk).aupdate(is_active=False)
    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
    communicator = WebsocketCommunicator(
        application,
        "/ws/farm/",
        headers=[(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)],
    )
    connected, _ = await communicator.connect(timeout=5)
    await communicator.disconnect()
    await sync_to_async(connections.close_all)()
    assert not connected


# -- the last admin -----------------------------------------------------------------------------


def test_the_last_admin_can_neither_demote_nor_disable_themselves(login):
    admin = login(Role.ADMIN)
    UserFactory(username="retired", role=Role.ADMIN, is_active=False)  # a disabled admin doesn't count
    me = admin.user

    response = admin.post(reverse("accounts:user_role", args=[me.pk]), {"role": "operator"}, follow=True)
    assert "last active admin" in messages_of(response)[0]
    response = admin.post(reverse("accounts:user_disable", args=[me.pk]), follow=True)
    assert "last active admin" in messages_of(response)[0]

    me.refresh_from_db()
    assert me.is_active and role_of(me) == Role.ADMIN
    assert not AuditEntry.objects.filter(action__in=["user.role", "user.disable"]).exists()


def test_with_another_admin_an_admin_may_step_down(login):
    admin = login(Role.ADMIN)
    UserFactory(username="other-admin", role=Role.ADMIN)
    admin.post(reverse("accounts:user_role", args=[admin.user.pk]), {"role": "viewer"})
    assert role_of(User.objects.get(pk=admin.user.pk)) == Role.VIEWER
    # Now a viewer: the user pages are closed to them.
    assert admin.get(reverse("accounts:users")).status_code == 403


def test_a_superuser_counts_as_an_admin_for_the_guard():
    root = User.objects.create_superuser("root", "", PASSWORD)
    admin = UserFactory(role=Role.ADMIN)
    user_role_set(user=admin, role=Role.VIEWER)  # root is still there
    with pytest.raises(UserChangeRefused):
        user_active_set(user=root, active=False)


def test_the_first_admin_from_ensure_admin_is_an_admin(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    call_command("ensure_admin", stdout=open("/dev/null", "w"))  # noqa: SIM115
    admin = User.objects.get(username="admin")
    assert not Profile.objects.filter(user=admin).exists()
    assert role_of(admin) == Role.ADMIN
    assert admin.is_superuser


# -- the password page ----------------------------------------------------------------------------


def test_an_admin_gives_a_user_a_new_password_shown_once(login):
    admin = login(Role.ADMIN)
    ann = UserFactory(username="ann", role=Role.VIEWER)
    ann_browser = Client()
    ann_browser.force_login(ann)
    response = admin.post(reverse("accounts:user_password", args=[ann.pk]))
    password = response.context["new_password"]
    assert User.objects.get(pk=ann.pk).check_password(password)
    assert ann_browser.get(reverse("jobs:queue")).status_code == 302  # their old session ended
    assert password not in admin.get(reverse("accounts:user", args=[ann.pk])).content.decode()


def test_a_user_changes_their_own_password(login):
    viewer = login(Role.VIEWER)
    response = viewer.post(
        reverse("accounts:password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "another good phrase 7",
            "new_password2": "another good phrase 7",
        },
    )
    assert response.status_code == 302
    assert User.objects.get(pk=viewer.user.pk).check_password("another good phrase 7")
    assert viewer.get(reverse("accounts:tokens")).status_code == 200  # this session stays
    assert AuditEntry.objects.filter(action="user.password", user=viewer.user).exists()
