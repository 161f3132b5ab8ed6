"""Channel and rule forms (the pages and the API check input through them)."""

from __future__ import annotations

from typing import Any

from django import forms

from notifications import apprise_send
from notifications.models import Channel, EventKind, Rule
from printers.models import Tag

URL_MAX = 2000


class ChannelForm(forms.Form):
    name = forms.CharField(max_length=80)
    # Write-only: never rendered back (it holds the channel's credentials).
    url = forms.CharField(
        label="Apprise URL",
        max_length=URL_MAX,
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="e.g. mailto://user:password@smtp.example.com?to=ops@example.com, "
        "discord://webhook_id/token, tgram://bot_token/chat_id, ntfy://topic, json://host/path. "
        "See the Apprise wiki for every service.",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, channel: Channel | None = None, **kwargs: Any) -> None:
        self.channel = channel
        if channel is not None:
            kwargs.setdefault("initial", {"name": channel.name, "enabled": channel.enabled})
        super().__init__(*args, **kwargs)
        if channel is not None:
            self.fields["url"].help_text = f"Stored: {channel.masked_url}. Leave blank to keep it."

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        taken = Channel.objects.filter(name__iexact=name)
        if self.channel is not None:
            taken = taken.exclude(pk=self.channel.pk)
        if taken.exists():
            raise forms.ValidationError("A channel with that name already exists.")
        return name

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        if not url:
            if self.channel is None:
                raise forms.ValidationError("Enter an Apprise URL.")
            return ""
        try:
            apprise_send.check(url)
        except apprise_send.BadChannelURL as exc:
            raise forms.ValidationError(str(exc)) from None
        return url


class RuleForm(forms.ModelForm):
    kinds = forms.MultipleChoiceField(
        label="Events", choices=EventKind.choices, widget=forms.CheckboxSelectMultiple
    )
    tags = forms.ModelMultipleChoiceField(
        queryset=Tag.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Only printers with one of these tags; none: every printer.",
    )
    channels = forms.ModelMultipleChoiceField(
        queryset=Channel.objects.all(), widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Rule
        fields = [
            "name",
            "kinds",
            "tags",
            "channels",
            "quiet_start",
            "quiet_end",
            "quiet_action",
            "digest_seconds",
            "offline_minutes",
            "enabled",
        ]
        widgets = {
            "quiet_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "quiet_end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }
        help_texts = {
            "quiet_start": "Quiet hours, local time; may span midnight. Blank: none.",
            "digest_seconds": "Events within this window go out as one message.",
            "offline_minutes": "For “Printer offline”: how long a printer must be unreachable.",
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if (data.get("quiet_start") is None) != (data.get("quiet_end") is None):
            self.add_error("quiet_end", "Give quiet hours both a start and an end, or neither.")
        return data
