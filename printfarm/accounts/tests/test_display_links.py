"""Display links (issue 12 item 3): a read-only link an admin makes and revokes signs a TV in
to the wall in kiosk mode, keeps it there, and survives a restart (a stored session)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from printers.tests.factories import PrinterFactory, UserFactory
from printfarm.accounts.models import AuditEntry, DisplayLink, Role

pytestmark = pytest.mark.django_db


def make_link(admin: Client, name: str = "Workshop TV") -> str:
    body = admin.post("/displays/", {"name": name}).content.decode()
    url = re.search(r'id="new-display-url" class="mono" value="([^"]+)"', body)
    assert url is not None, body
    return url.group(1).removeprefix("http://testserver")


def test_admin_makes_a_link_that_opens_the_wall_in_kiosk_mode(client) -> None:
    admin = Client()
    admin.force_login(UserFactory(role=Role.ADMIN))
    PrinterFactory(name="P1")
    path = make_link(admin)
    assert path.startswith("/display/pfd_")
    link = DisplayLink.objects.get()
    assert link.name == "Workshop TV" and link.digest not in path  # only a digest is stored
    assert "pfd_" + link.prefix in path
    assert AuditEntry.objects.filter(action="display.create").exists()

    tv = Client()
    opened = tv.get(path)
    assert opened.status_code == 302 and opened["Location"] == "/?view=wall&kiosk=1"
    wall = tv.get(opened["Location"]).content.decode()
    assert "kiosk" in re.search(r"<body class=\"([^\"]*)\"", wall).group(1)
    assert "printer-card-" in wall and "P1" in wall
    # Kept on the wall: every other page, the card view and the API go back to it.
    for other in ("/queue/", "/", "/?view=cards", "/users/", "/api/v1/printers"):
        response = tv.get(other)
        assert response.status_code == 302 and response["Location"] == "/?view=wall&kiosk=1", other
    assert tv.post("/printers/1/bed-cleared/").status_code == 302
    # A new client with the same session cookie (a browser after a server restart) is still in.
    again = Client()
    again.cookies = tv.cookies
    assert again.get("/?view=wall&kiosk=1").status_code == 200
    # The link's account is not listed among the users.
    assert "display-" not in admin.get("/users/").content.decode()


def test_revoking_signs_the_screen_out_and_the_link_stops_working(client) -> None:
    admin = Client()
    admin.force_login(UserFactory(role=Role.ADMIN))
    path = make_link(admin)
    tv = Client()
    tv.get(path)
    assert tv.get("/?view=wall&kiosk=1").status_code == 200
    link = DisplayLink.objects.get()
    assert admin.post(f"/displays/{link.pk}/revoke/").status_code == 302
    after = tv.get("/?view=wall&kiosk=1")  # the screen is told, where it is
    assert after.status_code == 403 and b"This display link doesn't work" in after.content
    assert tv.get("/?view=wall&kiosk=1")["Location"].startswith("/login/")  # and signed out
    assert Client().get(path).status_code == 404
    assert Client().get("/display/pfd_nothing_here/").status_code == 404
    assert AuditEntry.objects.filter(action="display.revoke").exists()


def test_only_admins_manage_display_links(client) -> None:
    client.force_login(UserFactory(role=Role.OPERATOR))
    assert client.get("/displays/").status_code == 403
    assert client.post("/displays/", {"name": "x"}).status_code == 403
    assert not DisplayLink.objects.exists()


def test_opening_a_link_in_a_signed_in_browser_does_not_reuse_that_session(client) -> None:
    admin = Client()
    admin.force_login(UserFactory(role=Role.ADMIN))
    path = make_link(admin)
    admin.get(path)
    # That browser is now the display, not the admin: the admin's pages are out of reach.
    assert admin.get("/users/")["Location"] == "/?view=wall&kiosk=1"


def test_a_display_may_load_the_images_its_wall_shows() -> None:
    from printfarm.accounts.displays import display_allowed

    assert display_allowed("/printers/7/camera/snapshot", {})
    assert display_allowed("/printers/7/thumbnail/abc123/", {})
    assert display_allowed("/cameras/", {})
    assert not display_allowed("/printers/7/", {})
    assert not display_allowed("/printers/7/camera/stream", {})  # a held-open stream per tile: no
    assert not display_allowed("/printers/7/command/pause/", {})
