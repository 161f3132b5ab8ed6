"""Forms for adding, editing and testing printers; they validate, services write."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.validators import URLValidator

from printers.models import Printer, Tag

MAX_TAGS = 20
TAG_MAX_LENGTH = Tag._meta.get_field("name").max_length
_TAG_RE = re.compile(r"^[\w][\w .:/+-]*$")

# Fields the printer services accept, apart from the API key (handled separately: write-only).
PRINTER_FIELDS = (
    "name",
    "protocol",
    "base_url",
    "enabled",
    "location",
    "nozzle_diameter",
    "build_x",
    "build_y",
    "build_z",
    "material",
    "auto_clear",
)


class AddressField(forms.URLField):
    """A printer's base URL: http or https only, scheme optional ("octopi.local" -> http://)."""

    default_validators = [URLValidator(schemes=["http", "https"])]

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("assume_scheme", "http")  # printers on a LAN rarely speak https
        kwargs.setdefault("max_length", 300)
        super().__init__(**kwargs)

    def clean(self, value: Any) -> str:
        url = super().clean(value)
        return url.rstrip("/") if url else url


def api_key_field() -> forms.CharField:
    # render_value=False: a stored or re-submitted key never goes back into the HTML.
    return forms.CharField(
        label="API key",
        required=False,
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )


def parse_tags(raw: str) -> list[str]:
    """'Lab-A, resin ,lab-a' -> ['lab-a', 'resin'] (lower case, de-duplicated, order kept)."""
    names: list[str] = []
    for part in raw.split(","):
        name = " ".join(part.split()).lower()
        if name and name not in names:
            names.append(name)
    return names


class PrinterForm(forms.ModelForm):
    """Add or edit a printer. The API key is write-only: blank on edit keeps the stored one."""

    base_url = AddressField(label="Address", help_text="e.g. http://192.168.1.50:7125 or http://octopi.local")
    api_key = api_key_field()
    clear_api_key = forms.BooleanField(label="Clear the stored API key", required=False)
    tags = forms.CharField(
        required=False,
        max_length=500,
        help_text="Comma-separated, e.g. lab-a, prusa",
    )

    class Meta:
        model = Printer
        fields = [
            "name",
            "protocol",
            "base_url",
            "api_key",
            "enabled",
            "tags",
            "location",
            "nozzle_diameter",
            "build_x",
            "build_y",
            "build_z",
            "material",
            "auto_clear",
        ]
        widgets = {
            "name": forms.TextInput(attrs={"autofocus": True}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.editing = self.instance.pk is not None
        if self.editing:
            self.initial["tags"] = ", ".join(t.name for t in self.instance.tags.all())
            self.fields["api_key"].help_text = (
                "Leave blank to keep the current key." if self.instance.api_key else "No key stored."
            )
        else:
            del self.fields["clear_api_key"]
            self.fields["api_key"].help_text = "OctoPrint needs one; Moonraker usually doesn't."
        # The model's choices include a blank option; a protocol is required.
        self.fields["protocol"].choices = Printer.Protocol.choices

    def clean_tags(self) -> list[str]:
        names = parse_tags(self.cleaned_data.get("tags") or "")
        if len(names) > MAX_TAGS:
            raise forms.ValidationError(f"At most {MAX_TAGS} tags.")
        for name in names:
            if len(name) > TAG_MAX_LENGTH:
                raise forms.ValidationError(f"“{name}” is longer than {TAG_MAX_LENGTH} characters.")
            if not _TAG_RE.match(name):
                raise forms.ValidationError(f"“{name}” has characters a tag can't contain.")
        return names

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        moved = self.editing and cleaned.get("base_url") not in (None, self.instance.base_url)
        if (
            moved
            and self.instance.api_key
            and not cleaned.get("api_key")
            and not cleaned.get("clear_api_key")
        ):
            # Keeping the key would send it to the new address unseen: ask for it again.
            self.add_error(
                "api_key",
                "The address changed: enter the API key again (or tick “Clear the stored API key”).",
            )
        return cleaned

    def _post_clean(self) -> None:
        # The ModelForm machinery would copy the (possibly blank) key onto the instance;
        # validate the other fields only and let printer_fields() decide about the key.
        key = self.cleaned_data.pop("api_key", "")
        tags = self.cleaned_data.pop("tags", None)
        super()._post_clean()
        self.cleaned_data["api_key"] = key
        if tags is not None:
            self.cleaned_data["tags"] = tags

    def new_api_key(self) -> str | None:
        """The key to store, or None to keep the current one."""
        if self.cleaned_data.get("clear_api_key"):
            return ""
        key = self.cleaned_data.get("api_key", "")
        if key or not self.editing:
            return key
        return None

    def printer_fields(self) -> dict[str, Any]:
        """The cleaned values, shaped for printers.services.printer_create / printer_update."""
        fields = {name: self.cleaned_data[name] for name in PRINTER_FIELDS}
        key = self.new_api_key()
        if key is not None:
            fields["api_key"] = key
        return fields


class ConnectionTestForm(forms.Form):
    """The subset of the printer form that "Test connection" needs."""

    protocol = forms.ChoiceField(choices=Printer.Protocol.choices)
    base_url = AddressField(label="Address")
    api_key = api_key_field()
    clear_api_key = forms.BooleanField(required=False)
