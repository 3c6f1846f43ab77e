"""Normalisation of identifiers and values: the one place every feature uses.

Pure functions over plain values (no ORM), so ingestion, resolution, the API, consent and
benchmarks share exactly the same rules.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from django.conf import settings
from email_validator import EmailNotValidError, validate_email

# Characters that spreadsheets and web forms leave around values and that str.strip() keeps:
# no-break space, zero-width space/joiners, word joiner, byte-order mark.
_INVISIBLE = "\u00a0\u200b\u200c\u200d\u2060\ufeff\u202f\u2007"
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]")
_STRIP_CHARS = " \t\r\n\v\f" + _INVISIBLE


class IdentifierTypes:
    """Names of identity types. A module of constants so pure code needs no model import."""

    EMAIL = "email"
    PHONE = "phone"
    USER_ID = "user_id"
    ANONYMOUS_ID = "anonymous_id"
    CUSTOMER_ID = "customer_id"
    MEMBER_NUMBER = "member_number"

    ALL = (EMAIL, PHONE, USER_ID, ANONYMOUS_ID, CUSTOMER_ID, MEMBER_NUMBER)


class InvalidValue(ValueError):
    """A value that cannot be read as its declared type; the message is shown to the user."""


@dataclass(frozen=True)
class IdentifierKey:
    """The match key of one identifier value, or why it has none.

    ``key`` is None when the value must never link records (a placeholder, a phone number that
    cannot be read unambiguously); ``flag`` then says why.
    """

    key: str | None
    flag: str = ""


def clean_text(value: object) -> str:
    """Trim whitespace including no-break and zero-width characters; Unicode NFC."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFC", str(value)).strip(_STRIP_CHARS)
    return _INVISIBLE_RE.sub("", text) if _INVISIBLE_RE.search(text) else text


def normalize_email(raw: object) -> str:
    """Return the match form of an e-mail address or raise InvalidValue.

    Trimmed (NBSP and zero-width included), NFC, lower-cased; an internationalised domain is
    kept in its ASCII (IDNA) form so that both spellings of the same domain match.
    """
    text = clean_text(raw)
    if not text:
        raise InvalidValue("e-mail is empty")
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidValue(f"not a valid e-mail address: {exc}") from None
    local = unicodedata.normalize("NFC", result.local_part).lower()
    return f"{local}@{result.ascii_domain.lower()}"


def normalize_phone(raw: object, region: str | None) -> IdentifierKey:
    """Return the E.164 key of a phone number, or no key with the reason.

    A number without a leading + needs a region (from the record's country or the source);
    nothing is guessed: a number that does not parse, or is not a valid number for its
    region, is kept raw by the caller and flagged here.
    """
    text = clean_text(raw)
    if not text:
        return IdentifierKey(None, "empty")
    if re.fullmatch(r"\d+(\.\d+)?[eE]\+?\d+", text):
        return IdentifierKey(None, "scientific notation (a spreadsheet mangled this number)")
    region = (region or "").upper() or None
    if not text.startswith("+") and not text.startswith("00") and region is None:
        return IdentifierKey(None, "no country to read a national number")
    if text.startswith("00") and region is None:
        text = "+" + text[2:]  # 00 is the international prefix; phonenumbers needs a region for it
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        return IdentifierKey(None, f"not a phone number: {exc}")
    if not phonenumbers.is_valid_number(number):
        return IdentifierKey(None, "not a valid number for its country")
    return IdentifierKey(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def normalize_id(raw: object) -> str:
    """User ids, anonymous ids and customer numbers: trimmed, NFC, case kept."""
    return clean_text(raw)


def normalize_member_number(raw: object) -> str:
    """Loyalty member numbers: as printed on a card or typed, so spaces and dashes are dropped
    and letters upper-cased ("lm 1234-5678" and "LM12345678" are one member)."""
    return re.sub(r"[\s\-]", "", clean_text(raw)).upper()


@lru_cache(maxsize=8)
def _placeholder_keys(values: tuple[str, ...]) -> frozenset[str]:
    keys = set()
    for value in values:
        cleaned = clean_text(value).lower()
        keys.add(cleaned)
        digits = re.sub(r"\D", "", cleaned)
        if digits:
            keys.add(digits)
    return frozenset(keys)


def is_placeholder(key: str) -> bool:
    """True for values people type when they do not want to give one (see settings)."""
    placeholders = _placeholder_keys(tuple(settings.CDP_PLACEHOLDER_VALUES))
    lowered = key.lower()
    if lowered in placeholders:
        return True
    digits = re.sub(r"\D", "", lowered)
    if lowered.startswith("+") and digits:
        return digits in placeholders or digits[1:] in placeholders or len(set(digits[1:])) == 1
    return False


def identifier_key(id_type: str, raw: object, *, region: str | None = None) -> IdentifierKey:
    """The match key for an identifier of a type, with the placeholder rule applied.

    Raises InvalidValue for an e-mail that is not an address (a row error); other types
    never raise: what cannot be a key is returned without one, flagged.
    """
    if id_type == IdentifierTypes.EMAIL:
        key = normalize_email(raw)
    elif id_type == IdentifierTypes.PHONE:
        result = normalize_phone(raw, region)
        if result.key is None:
            return result
        key = result.key
    elif id_type == IdentifierTypes.MEMBER_NUMBER:
        key = normalize_member_number(raw)
        if not key:
            return IdentifierKey(None, "empty")
    else:
        key = normalize_id(raw)
        if not key:
            return IdentifierKey(None, "empty")
    if is_placeholder(key):
        return IdentifierKey(None, "placeholder value")
    return IdentifierKey(key)
