"""The API's choices and bounds are the models' and forms' own: what the web takes, the API takes."""

from __future__ import annotations

import pytest

from jobs.forms import QueueForm
from jobs.models import Job
from printers.forms import PrinterForm
from printers.models import Printer
from printers.state import State
from printfarm.accounts.models import Role
from printfarm.api.tests.clients import post

pytestmark = pytest.mark.django_db


@pytest.fixture
def components(viewer) -> dict:
    return viewer.get("/api/v1/openapi.json").json()["components"]["schemas"]


def test_choices_are_the_models(components):
    for schema in ("PrinterIn", "PrinterPatch"):
        assert components[schema]["properties"]["protocol"]["enum"] == Printer.Protocol.values
    assert components["JobIn"]["properties"]["action"]["enum"] == Job.Action.values
    assert components["UserIn"]["properties"]["role"]["enum"] == Role.values
    assert list(components["StateCount"]["properties"]) == [s.value for s in State]


def test_bounds_are_the_forms(components):
    printer, job = components["PrinterIn"]["properties"], components["JobIn"]["properties"]
    for name in ("name", "base_url", "api_key"):
        assert printer[name]["maxLength"] == PrinterForm.base_fields[name].max_length
    for name in ("quantity", "priority"):
        field = QueueForm.base_fields[name]
        assert (job[name]["minimum"], job[name]["maximum"]) == (field.min_value, field.max_value)


def test_an_address_the_web_form_takes_the_api_takes(admin):
    # The API said 200 characters while the form and the column take 300.
    address = "http://127.0.0.1:7125/" + "p" * 230
    assert 200 < len(address) <= PrinterForm.base_fields["base_url"].max_length
    response = post(admin, "/api/v1/printers", {"name": "long", "protocol": "moonraker", "base_url": address})
    assert response.status_code == 201, response.content
