"""PATCH: absent fields stay as they are, null clears only what may be empty, bodies are objects."""

from __future__ import annotations

from decimal import Decimal

import pytest

from jobs.tests.factories import make_file
from printers.models import Printer
from printers.tests.factories import PrinterFactory, UserFactory
from printfarm.accounts.models import Role
from printfarm.api.tests.clients import assert_error, patch, post

pytestmark = pytest.mark.django_db

KEY = "sk-patch-key-1234"


@pytest.fixture
def printer() -> Printer:
    return PrinterFactory(
        name="mk4",
        tags=["lab", "pla"],
        location="shelf 1",
        material="PLA",
        api_key=KEY,
        nozzle_diameter=Decimal("0.60"),
        build_x=250,
        auto_clear=True,
    )


def stored(printer: Printer) -> dict:
    printer.refresh_from_db()
    fields = {name: getattr(printer, name) for name in ("name", "protocol", "base_url", "enabled")}
    fields |= {
        name: getattr(printer, name)
        for name in ("location", "material", "api_key", "nozzle_diameter", "build_x", "auto_clear")
    }
    return fields | {"tags": sorted(t.name for t in printer.tags.all())}


def url(printer: Printer) -> str:
    return f"/api/v1/printers/{printer.pk}"


def test_fields_not_in_the_body_are_untouched(admin, printer):
    before = stored(printer)
    response = patch(admin, url(printer), {"location": "shelf 2"})
    assert response.status_code == 200, response.content
    assert stored(printer) == before | {"location": "shelf 2"}
    assert patch(admin, url(printer), {}).status_code == 200
    assert stored(printer) == before | {"location": "shelf 2"}


def test_null_clears_tags_location_material_and_the_key(admin, printer):
    before = stored(printer)
    response = patch(admin, url(printer), {"tags": None, "location": None, "material": None})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["tags"], body["location"], body["material"]) == ([], "", "")
    assert stored(printer) == before | {"tags": [], "location": "", "material": ""}
    assert patch(admin, url(printer), {"api_key": None}).json()["has_api_key"] is False
    assert stored(printer)["api_key"] == ""


def test_the_printer_model_is_set_shown_and_cleared(admin, printer):
    body = patch(admin, url(printer), {"model": "Bambu Lab P1S"}).json()
    assert body["model"] == "Bambu Lab P1S"
    assert admin.get(url(printer)).json()["model"] == "Bambu Lab P1S"
    assert patch(admin, url(printer), {"model": None}).json()["model"] == ""
    printer.refresh_from_db()
    assert printer.model == ""


def test_an_empty_list_clears_the_tags_too(admin, printer):
    assert patch(admin, url(printer), {"tags": []}).json()["tags"] == []


REQUIRED = [
    "name",
    "protocol",
    "base_url",
    "enabled",
    "auto_clear",
    "nozzle_diameter",
    "build_x",
    "build_y",
    "build_z",
]


@pytest.mark.parametrize("name", REQUIRED)
def test_null_is_refused_where_a_value_is_required(admin, printer, name):
    before = stored(printer)
    response = patch(admin, url(printer), {name: None, "location": "moved"})
    assert name in assert_error(response, 422, "invalid")["fields"]
    assert stored(printer) == before  # nothing else changed either


@pytest.mark.parametrize("body", [[], [None], "x", None, 1, True, [{"location": "x"}]])
def test_a_body_that_is_not_an_object_is_422(admin, printer, body):
    before = stored(printer)
    assert_error(patch(admin, url(printer), body), 422, "invalid")
    assert stored(printer) == before


@pytest.mark.parametrize("body", [[], [None], "x", None])
def test_every_json_body_must_be_an_object(admin, body):
    user = UserFactory(role=Role.VIEWER)
    for method, path in [
        (post, "/api/v1/printers"),
        (post, "/api/v1/users"),
        (post, "/api/v1/jobs"),
        (post, "/api/v1/queue/order"),
        (patch, f"/api/v1/users/{user.pk}"),
    ]:
        assert_error(method(admin, path, body), 422, "invalid")
    assert not Printer.objects.exists()


def test_user_patch_refuses_null_role_and_access_and_clears_email(admin):
    user = UserFactory(role=Role.OPERATOR, email="ann@example.com")
    for name in ("role", "is_active"):
        response = patch(admin, f"/api/v1/users/{user.pk}", {name: None})
        assert name in assert_error(response, 422, "invalid")["fields"]
    user.refresh_from_db()
    assert user.is_active and user.profile.role == Role.OPERATOR
    body = patch(admin, f"/api/v1/users/{user.pk}", {"email": None}).json()
    assert (body["email"], body["role"], body["is_active"]) == ("", "operator", True)


def test_the_openapi_schema_says_where_null_is_allowed(admin):
    components = admin.get("/api/v1/openapi.json").json()["components"]["schemas"]

    def nullable(schema: str, name: str) -> bool:
        prop = components[schema]["properties"][name]
        return {"type": "null"} in prop.get("anyOf", [])

    printer_patch = components["PrinterPatch"]["properties"]
    assert {name for name in printer_patch if nullable("PrinterPatch", name)} == {
        "tags",
        "location",
        "model",
        "material",
        "api_key",
        "camera_snapshot_url",
        "camera_stream_url",
    }
    for name in (
        "tags",
        "location",
        "model",
        "material",
        "api_key",
        "camera_snapshot_url",
        "camera_stream_url",
    ):
        assert "null" in printer_patch[name]["description"]
    assert "default" not in printer_patch["enabled"]  # absent means unchanged, not null
    user_patch = components["UserPatch"]["properties"]
    assert {name for name in user_patch if nullable("UserPatch", name)} == {"email"}


def test_a_patch_through_the_api_keeps_the_forms_rules(admin, printer):
    other = PrinterFactory(name="taken")
    assert "name" in assert_error(patch(admin, url(printer), {"name": other.name}), 422, "invalid")["fields"]
    assert "tags" in assert_error(patch(admin, url(printer), {"tags": ["bad!tag"]}), 422, "invalid")["fields"]
    response = patch(admin, url(printer), {"nozzle_diameter": 9})
    assert "nozzle_diameter" in assert_error(response, 422, "invalid")["fields"]


def test_a_job_post_with_a_null_required_field_is_422(operator):
    response = post(operator, "/api/v1/jobs", {"file_id": make_file().pk, "quantity": None})
    assert "quantity" in assert_error(response, 422, "invalid")["fields"]


def test_user_create_follows_the_web_forms_rules(admin):
    UserFactory(username="oo")
    for username in ("\u00bao", "OO", "bad name!", "a\x00b"):  # NFKC turns "\u00ba" into "o"
        response = post(admin, "/api/v1/users", {"username": username, "password": "correct-horse-9"})
        assert "username" in assert_error(response, 422, "invalid")["fields"], username
    response = post(
        admin, "/api/v1/users", {"username": "ann", "email": "nope", "password": "correct-horse-9"}
    )
    assert "email" in assert_error(response, 422, "invalid")["fields"]


def test_user_patch_checks_the_email(admin):
    user = UserFactory(email="ann@example.com")
    for email in ("not an email", "a\x00b@example.com"):
        response = patch(admin, f"/api/v1/users/{user.pk}", {"email": email})
        assert "email" in assert_error(response, 422, "invalid")["fields"]
    user.refresh_from_db()
    assert user.email == "ann@example.com"
