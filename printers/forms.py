"""Forms for adding, editing and testing printers; they validate, services write."""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from typing import Any
from urllib.parse import parse_qs, urlsplit

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
    "username",
    "serial",
    "enabled",
    "location",
    "model",
    "nozzle_diameter",
    "build_x",
    "build_y",
    "build_z",
    "material",
    "auto_clear",
    "camera_on_card",
)


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata services (they hand out credentials to whoever asks from inside):
# 169.254.169.254 (AWS, GCP, Azure, OpenStack; link-local anyway), AWS over IPv6, Alibaba.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# What IDNA reads as a dot; NFKC turns full-width digits into ASCII ones.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_INET_ATON = re.compile(r"[0-9a-fA-FxX.]+")


def literal_ip(host: str) -> IPAddress | None:
    """The IP address a host name is literally, however written; None for a name (no DNS lookup)."""
    name = unicodedata.normalize("NFKC", host).translate(_DOTS).strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(name.split("%", 1)[0])  # without an IPv6 zone (%eth0)
    except ValueError:
        pass
    if _INET_ATON.fullmatch(name):
        try:
            # The forms resolvers accept too: 2852039166, 0xA9FEA9FE, 0251.0376.0251.0376, 169.254.43518.
            return ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_refused_address(ip: IPAddress) -> bool:
    """Link-local (169.254.0.0/16, fe80::/10) or a metadata service: never a printer."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and is_refused_address(embedded):
            return True
    return ip.is_link_local or ip in METADATA_ADDRESSES


class AddressField(forms.URLField):
    """A printer's base URL: http or https only, scheme optional ("octopi.local" -> http://).

    Refused, so that "Test connection" and the poller never send a request there: user names
    and passwords (the API key field is for secrets; an address is shown to every role), a
    port outside 1-65535, link-local and cloud metadata addresses.
    """

    default_validators = [URLValidator(schemes=["http", "https"])]

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("assume_scheme", "http")  # printers on a LAN rarely speak https
        kwargs.setdefault("max_length", 300)
        super().__init__(**kwargs)

    def validate(self, value: Any) -> None:
        super().validate(value)
        # Before the URL validator, which calls some of these merely "not a valid URL".
        if "\\" in value:
            # Browsers and some HTTP clients read it as "/": the host would not be the one checked.
            raise forms.ValidationError("Use / in an address, not \\.", code="backslash")
        authority = re.split(r"[/?#]", value.partition("://")[2] or value, maxsplit=1)[0]
        if "@" in authority:
            raise forms.ValidationError(
                "Leave the user name and password out of the address: put the printer's key "
                "in the API key field.",
                code="credentials",
            )

    def clean(self, value: Any) -> str:
        url = super().clean(value)
        if not url:
            return url
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port is not None and not 1 <= port <= 65535:
            raise forms.ValidationError("The port must be between 1 and 65535.", code="port")
        ip = literal_ip(parts.hostname or "")
        if ip is not None and is_refused_address(ip):
            raise forms.ValidationError(
                "That is a link-local or cloud metadata address (169.254.x.x, fe80::…), not a printer.",
                code="refused_address",
            )
        return url.rstrip("/")


def _query_port(query: dict[str, list[str]], name: str) -> int | None:
    value = query.get(name, [""])[-1]
    return int(value) if value else None


class BambuAddressField(forms.CharField):
    """A Bambu Lab printer's address: its IP or host name ("192.168.1.60", stored as
    "mqtts://192.168.1.60": MQTT on 8883, FTPS on 990), or an mqtts:// URL with other ports
    (`mqtts://host:port?ftps=port&camera=port`, the simulator's)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 300)
        super().__init__(**kwargs)

    def clean(self, value: Any) -> str:
        text = super().clean(value)
        if not text:
            return text
        if "@" in text or "\\" in text or any(c.isspace() for c in text):
            raise forms.ValidationError("Enter the printer's IP address or host name.", code="invalid")
        try:
            # urlsplit itself refuses a bracketed host that is no IPv6 address ("[printer]").
            parts = urlsplit(text if "://" in text else f"mqtts://{text}")
        except ValueError:
            raise forms.ValidationError(
                "Enter the printer's IP address or host name.", code="invalid"
            ) from None
        try:
            port = parts.port
            query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
            if set(query) - {"ftps", "camera"}:
                raise ValueError(parts.query)
            ftps_port, camera_port = (_query_port(query, name) for name in ("ftps", "camera"))
        except ValueError:
            port = ftps_port = camera_port = 0
        if parts.scheme != "mqtts" or not parts.hostname or parts.path.strip("/") or parts.fragment:
            raise forms.ValidationError(
                "Enter the printer's IP address or host name (e.g. 192.168.1.60).", code="invalid"
            )
        if any(p is not None and not 1 <= p <= 65535 for p in (port, ftps_port, camera_port)):
            raise forms.ValidationError("The port must be between 1 and 65535.", code="port")
        ip = literal_ip(parts.hostname)
        if ip is not None and is_refused_address(ip):
            raise forms.ValidationError(
                "That is a link-local or cloud metadata address (169.254.x.x, fe80::…), not a printer.",
                code="refused_address",
            )
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        address = f"mqtts://{host}" + (f":{port}" if port else "")
        ports = [f"{name}={value}" for name, value in (("ftps", ftps_port), ("camera", camera_port)) if value]
        return address + ("?" + "&".join(ports) if ports else "")


def clean_serial(value: str) -> str:
    """A serial number names MQTT topics: letters and digits only (shown upper case on the printer)."""
    serial = value.strip().upper()
    if serial and not re.fullmatch(r"[A-Z0-9]{1,40}", serial):
        raise forms.ValidationError("A serial number has only letters and digits.", code="serial")
    return serial


def _bambu_fields(form: forms.BaseForm, protocol: str | None) -> None:
    """A Bambu Lab printer has an IP/host for an address and a LAN access code for a key."""
    if protocol != Printer.Protocol.BAMBU:
        return
    form.fields["base_url"] = BambuAddressField(
        label="Address", help_text="The printer's IP address or host name, e.g. 192.168.1.60"
    )
    form.fields["api_key"].label = "LAN access code"
    form.fields["api_key"].help_text = (
        "8 characters, on the printer's screen (Settings → Network / WLAN). "
        + ("Leave blank to keep the current code." if getattr(form, "editing", False) else "")
    ).strip()


def clean_username(value: str, protocol: str | None) -> str:
    """PrusaLink's digest user ("maker" on Buddy printers); no other protocol signs in with one."""
    username = value.strip()
    if protocol != Printer.Protocol.PRUSALINK:
        return ""
    if username and not re.fullmatch(r"[\w.@+-]{1,40}", username):
        raise forms.ValidationError("A user name has letters, digits and . @ + - _ only.", code="username")
    return username


def _prusalink_fields(form: forms.BaseForm, protocol: str | None) -> None:
    """A PrusaLink printer signs in with the password its menu shows (digest, user "maker"), or
    an API key (Prusa-Link on a Raspberry Pi); both go in the key field."""
    if protocol != Printer.Protocol.PRUSALINK:
        return
    form.fields["api_key"].label = "Password or API key"
    form.fields["api_key"].help_text = (
        "On the printer: Settings → Network → PrusaLink (the password). "
        + ("Leave blank to keep the current one." if getattr(form, "editing", False) else "")
    ).strip()


def username_field() -> forms.CharField:
    return forms.CharField(
        label="User name",
        required=False,
        max_length=40,
        strip=True,
        help_text="PrusaLink: “maker” signs in with the printer's password (HTTP digest); "
        "blank sends the key as X-Api-Key",
    )


def api_key_field() -> forms.CharField:
    # render_value=False: a stored or re-submitted key never goes back into the HTML.
    return forms.CharField(
        label="API key",
        required=False,
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )


class CameraUrlField(forms.CharField):
    """A webcam's snapshot or stream URL: http(s) only, a user name and password allowed (the
    value is stored encrypted and never shown again), link-local and metadata hosts refused."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 500)
        kwargs.setdefault("widget", forms.URLInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
        super().__init__(**kwargs)

    def clean(self, value: Any) -> str:
        from printers.cameras import camera_url_problem  # it imports the address helpers above

        url = super().clean(value)
        if url and "://" not in url:
            url = f"http://{url}"
        problem = camera_url_problem(url) if url else ""
        if problem:
            raise forms.ValidationError(problem, code="camera_url")
        return url


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
    username = username_field()
    api_key = api_key_field()
    clear_api_key = forms.BooleanField(label="Clear the stored API key", required=False)
    forget_certificate = forms.BooleanField(
        label="Forget the pinned certificate",
        required=False,
        help_text="After replacing the printer: the next connection pins the certificate it presents.",
    )
    tags = forms.CharField(
        required=False,
        max_length=500,
        help_text="Comma-separated, e.g. lab-a, prusa",
    )
    # Write-only, like the key: never filled from the stored value (printers.cameras).
    camera_snapshot_url = CameraUrlField(
        label="Snapshot URL", help_text="e.g. http://192.168.1.50/webcam/?action=snapshot"
    )
    camera_stream_url = CameraUrlField(
        label="Stream URL (MJPEG)", help_text="e.g. http://192.168.1.50/webcam/?action=stream"
    )
    clear_camera = forms.BooleanField(label="Remove the stored camera", required=False)

    class Meta:
        model = Printer
        fields = [
            "name",
            "protocol",
            "base_url",
            "username",
            "api_key",
            "serial",
            "enabled",
            "tags",
            "location",
            "model",
            "nozzle_diameter",
            "build_x",
            "build_y",
            "build_z",
            "material",
            "auto_clear",
            "camera_on_card",
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
        if not (self.editing and self.instance.certificate_pin):
            del self.fields["forget_certificate"]
        self._camera_help()
        # The model's choices include a blank option; a protocol is required.
        self.fields["protocol"].choices = Printer.Protocol.choices
        protocol = self.data.get("protocol") if self.is_bound else self.instance.protocol
        _bambu_fields(self, protocol)
        _prusalink_fields(self, protocol)

    def _camera_help(self) -> None:
        """On edit, say a camera URL is stored (its host only) and that blank keeps it."""
        from printers.cameras import camera_host

        stored = False
        for name in ("camera_snapshot_url", "camera_stream_url"):
            url = getattr(self.instance, name, "") if self.editing else ""
            if url:
                stored = True
                shown = camera_host(url)
                self.fields[name].help_text = f"Stored (camera at {shown}); leave blank to keep it."
        if not stored:
            del self.fields["clear_camera"]
            if not self.editing:
                for name in ("camera_snapshot_url", "camera_stream_url"):
                    self.fields[name].help_text += ". Blank: found from the printer on save, if it says"

    def clean_serial(self) -> str:
        return clean_serial(self.cleaned_data.get("serial") or "")

    def clean_username(self) -> str:
        return clean_username(self.cleaned_data.get("username") or "", self.data.get("protocol"))

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
        if cleaned.get("protocol") == Printer.Protocol.BAMBU and not cleaned.get("serial"):
            self.add_error("serial", "A Bambu Lab printer needs its serial number (Settings → Device).")
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
        # Another serial is another printer: its certificate is pinned afresh.
        reidentified = self.editing and fields["serial"] != self.initial.get("serial", "")
        if self.cleaned_data.get("forget_certificate") or reidentified:
            fields["certificate_pin"] = ""
        key = self.new_api_key()
        if key is not None:
            fields["api_key"] = key
        for name in ("camera_snapshot_url", "camera_stream_url"):
            url = self.cleaned_data.get(name, "")
            if self.cleaned_data.get("clear_camera"):
                fields[name] = url  # cleared, or replaced by what was typed with the tick
            elif url or not self.editing:
                fields[name] = url
        return fields


class ConnectionTestForm(forms.Form):
    """The subset of the printer form that "Test connection" needs."""

    protocol = forms.ChoiceField(choices=Printer.Protocol.choices)
    base_url = AddressField(label="Address")
    api_key = api_key_field()
    clear_api_key = forms.BooleanField(required=False)
    serial = forms.CharField(label="Serial number", required=False, max_length=40, strip=True)
    username = username_field()

    def clean_serial(self) -> str:
        return clean_serial(self.cleaned_data.get("serial") or "")

    def clean_username(self) -> str:
        return clean_username(self.cleaned_data.get("username") or "", self.data.get("protocol"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _bambu_fields(self, self.data.get("protocol"))
        _prusalink_fields(self, self.data.get("protocol"))
