"""Forms for users, API tokens and the audit log's filters; they validate, services write."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from printers.models import Printer, Tag
from printfarm.accounts.models import ApiToken, AuditEntry, Role

ACTION_PREFIXES = [
    ("printer.", "Printers"),
    ("job.", "Jobs and the queue"),
    ("file.", "Files"),
    ("user.", "Users"),
    ("token.", "API tokens"),
]
VIAS = [("web", "Web"), ("api", "API"), ("slicer", "Slicer")]


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="Letters, digits and @ . + - _ only.")
    email = forms.EmailField(required=False, help_text="Optional.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to generate a strong one, shown once on the next page.",
    )

    def clean_username(self) -> str:
        model = get_user_model()
        # As create_user will store it (NFKC: "ºo" is "oo"), so the check below sees that row.
        username = model.normalize_username(self.cleaned_data["username"])
        model.username_validator(username)
        if model.objects.filter(username__iexact=username).exists():
            raise ValidationError("A user with that username already exists.")
        return username

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        password = data.get("password")
        if password and "username" in data:
            candidate = get_user_model()(username=data["username"], email=data.get("email", ""))
            try:
                validate_password(password, candidate)
            except ValidationError as exc:
                self.add_error("password", exc)
        return data


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class TokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["name", "printer", "tag"]
        labels = {"printer": "Slicer jobs go to printer", "tag": "or to any printer tagged"}
        help_texts = {
            "name": "Where it is used, e.g. “PrusaSlicer on the CAD PC”.",
            "printer": "Optional: where a slicer's “upload and print” through this token is queued.",
            "tag": "Optional, instead of a printer: the first free printer with this tag prints it.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["printer"].queryset = Printer.objects.order_by("name")
        self.fields["tag"].queryset = Tag.objects.order_by("name")
        self.fields["printer"].empty_label = "any printer"
        self.fields["tag"].empty_label = "no tag"

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("printer") and data.get("tag"):
            raise ValidationError("Choose a printer or a tag, not both.")
        return data


class AuditFilterForm(forms.Form):
    """`?user=3&action=job.&type=printer&via=api&from=2026-03-01&to=2026-03-07`. A value that
    doesn't validate is dropped: the page then shows more, never an error."""

    user = forms.ModelChoiceField(queryset=None, required=False, empty_label="Anyone")
    action = forms.ChoiceField(choices=[("", "Any action"), *ACTION_PREFIXES], required=False)
    type = forms.ChoiceField(required=False, label="Target")
    via = forms.ChoiceField(choices=[("", "Any way"), *VIAS], required=False)
    start = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = get_user_model().objects.order_by("username")
        types = AuditEntry.objects.exclude(target_type="").order_by("target_type")
        names = types.values_list("target_type", flat=True).distinct()
        self.fields["type"].choices = [("", "Anything"), *((name, name) for name in names)]

    def add_prefix(self, field_name: str) -> str:
        # Dates read and write the short query names, as on the history page (?from=, ?to=).
        return {"start": "from", "end": "to"}.get(field_name, field_name)

    def filters(self) -> dict[str, Any]:
        """The filters that validated; the others are ignored."""
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if value not in (None, "")}
