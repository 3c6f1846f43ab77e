"""Salted hashes of identifiers: how the suppression list and erased requests name a person.

HMAC-SHA256 with a secret salt (``CDP_SUPPRESSION_SALT``, by default derived from SECRET_KEY),
over the identifier's normalised match key, so every spelling of an e-mail hashes alike and
nobody without the salt can test a guess. Pure functions; no ORM.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings


def _salt() -> bytes:
    salt = getattr(settings, "CDP_SUPPRESSION_SALT", "") or ("suppression:" + settings.SECRET_KEY)
    return salt.encode("utf-8")


def identifier_hash(id_type: str, key: str) -> str:
    """The salted hash of one normalised identifier (hex, 64 characters)."""
    message = f"{id_type}:{key}".encode()
    return hmac.new(_salt(), message, hashlib.sha256).hexdigest()


def secret_hash(value: str) -> str:
    """Unsalted SHA-256 for one-time verification tokens and codes (high entropy or short-lived)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
