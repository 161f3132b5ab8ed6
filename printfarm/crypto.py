"""Secrets encrypted at rest: Fernet keys from settings and a model field that stores ciphertext.

Keys, first one encrypts, all of them decrypt (MultiFernet):

1. `PRINTFARM_ENCRYPTION_KEY` (a Fernet key), else a key derived from `SECRET_KEY` with HKDF;
2. each of `PRINTFARM_ENCRYPTION_KEY_OLD` (a Fernet key, or an old SECRET_KEY to derive from);
3. a key derived from each of Django's `SECRET_KEY_FALLBACKS`.

So rotating SECRET_KEY (without PRINTFARM_ENCRYPTION_KEY set) means: put the old SECRET_KEY in
PRINTFARM_ENCRYPTION_KEY_OLD (or SECRET_KEY_FALLBACKS), restart, run `reencrypt_all()`, then
drop the old key. Without the old key the stored secrets are unreadable.
"""

from __future__ import annotations

import base64
import functools
import logging
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction

from printfarm.env import is_fernet_key

logger = logging.getLogger(__name__)

_HKDF_SALT = b"printfarm"
_HKDF_INFO = b"printfarm secrets at rest v1"
TOKEN_PREFIX = "gAAAAA"  # every Fernet token: version byte 0x80 plus a 64-bit timestamp


def derive_key(secret: str) -> bytes:
    """A Fernet key derived from a Django SECRET_KEY (HKDF-SHA256)."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO).derive(secret.encode())
    return base64.urlsafe_b64encode(raw)


def cipher() -> MultiFernet:
    """The cipher for the current settings (read on every call, so a changed configuration or
    a test's override never meets a stale cipher; the keys themselves are cached)."""
    return _cipher(
        getattr(settings, "PRINTFARM_ENCRYPTION_KEY", "") or "",
        settings.SECRET_KEY,
        tuple(getattr(settings, "PRINTFARM_ENCRYPTION_KEY_OLD", ())),
        tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ())),
    )


@functools.lru_cache(maxsize=8)
def _cipher(primary: str, secret_key: str, old: tuple[str, ...], fallbacks: tuple[str, ...]) -> MultiFernet:
    if primary and not is_fernet_key(primary):
        raise ImproperlyConfigured(
            "PRINTFARM_ENCRYPTION_KEY is not a Fernet key (44 URL-safe base64 characters); make one "
            'with: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
        )
    keys = [primary.encode() if primary else derive_key(secret_key)]
    for entry in old:
        # An old entry may be a Fernet key or an old SECRET_KEY: try it both ways.
        if is_fernet_key(entry):
            keys.append(entry.encode())
        keys.append(derive_key(entry))
    keys += [derive_key(entry) for entry in fallbacks]
    return MultiFernet([Fernet(key) for key in dict.fromkeys(keys)])


def encrypt(text: str) -> str:
    return cipher().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    """The plaintext of a token; raises cryptography's InvalidToken if no configured key fits."""
    return cipher().decrypt(token.encode()).decode()


class Undecryptable(str):
    """What an EncryptedTextField reads when no configured key opens the stored token.

    It equals "" (no secret: a printer is then polled without its key and shows an
    authentication error), but saving the row writes the original token back, so a
    mis-set key loses nothing once the right key is configured again.
    """

    token: str

    def __new__(cls, token: str) -> Undecryptable:
        value = super().__new__(cls, "")
        value.token = token
        return value


_reported: set[str] = set()


def _unreadable(token: str, field: models.Field) -> Undecryptable:
    if token not in _reported:
        _reported.add(token)  # once per token and process: the poller reads every few seconds
        logger.error(
            "Cannot decrypt a stored %s.%s with the configured keys (PRINTFARM_ENCRYPTION_KEY or SECRET_KEY "
            "changed without the old key in PRINTFARM_ENCRYPTION_KEY_OLD?); using no key",
            field.model._meta.label,
            field.name,
        )
    return Undecryptable(token)


class EncryptedTextField(models.TextField):
    """A text secret stored as a Fernet token; Python code only ever sees the plaintext.

    The blank value is stored as "" (it says only "no secret", which pages show anyway), so
    `filter(field="")` works; a lookup on any other value can't match (every token differs).
    """

    description = "Text encrypted at rest (Fernet)"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> str | None:
        if not value:
            return value
        try:
            return decrypt(value)
        except InvalidToken:
            return _unreadable(value, self)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if isinstance(value, Undecryptable):
            return value.token
        if not value:
            return value
        return encrypt(value)


def reencrypt_all() -> int:
    """Re-encrypt every EncryptedTextField value under the current first key (after a key
    rotation, before dropping the old one). Returns how many values were rewritten."""
    done = 0
    for model in apps.get_models():
        names = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if not names:
            continue
        with transaction.atomic():
            for row in model._base_manager.select_for_update().only("pk", *names):
                values = {name: getattr(row, name) for name in names}
                readable = {k: v for k, v in values.items() if v and not isinstance(v, Undecryptable)}
                if readable:
                    # update() runs get_prep_value: each value is encrypted under the first key.
                    model._base_manager.filter(pk=row.pk).update(**readable)
                    done += len(readable)
    return done
