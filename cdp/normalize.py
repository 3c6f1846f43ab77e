"""Normalisation of identifiers and values: the one place every feature uses.

Pure functions over plain values (no ORM), so ingestion, resolution, the API, consent and
benchmarks share exactly the same rules.
"""

from __future__ import annotations

import re
import sys
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
_ASCII_STRIP_CHARS = " \t\r\n\v\f"
_STRIP_CHARS = _ASCII_STRIP_CHARS + _INVISIBLE


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
    text = str(value)
    if text.isascii():
        # ASCII is its own NFC form and holds none of the invisible characters: the same
        # result, without the Unicode passes (most cells of most files).
        return text.strip(_ASCII_STRIP_CHARS)
    text = unicodedata.normalize("NFC", text).strip(_STRIP_CHARS)
    return _INVISIBLE_RE.sub("", text) if _INVISIBLE_RE.search(text) else text


def _memoise_email_domains() -> None:
    """Remember email_validator's domain check per distinct domain (same results, cached).

    ``validate_email`` checks the domain of every address from scratch (IDNA and a Unicode
    table lookup per character), though a file's addresses share a few dozen domains: that was
    more than half of the cost of each address. The check is a pure function of the domain and
    two flags, and ``validate_email`` only reads the dict it returns. Invalid domains raise and
    are not cached. If the library ever moves the function, nothing is cached and nothing breaks.
    """
    module = sys.modules.get("email_validator.validate_email")
    check = getattr(module, "validate_email_domain_name", None)
    if check is None or hasattr(check, "cache_info"):
        return
    module.validate_email_domain_name = lru_cache(maxsize=4096)(check)


_memoise_email_domains()


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
    # 2.02555E+09, or 2,02555E+09 from a spreadsheet in a decimal-comma locale.
    if re.fullmatch(r"\d+([.,]\d+)?[eE]\+?\d+", text):
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
    if _national_starts_with_country_code(text, region, number):
        return IdentifierKey(None, "ambiguous: a national number that starts with its country code")
    if number.extension:
        # An extension is an office switchboard: colleagues share the number (the key would
        # drop the extension), so it identifies nobody on its own.
        return IdentifierKey(None, "has an extension (a shared office line)")
    return IdentifierKey(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _national_starts_with_country_code(text: str, region: str | None, number) -> bool:
    """True when a number written without + or 00 starts with its region's country code.

    "49 30 1234567" with region DE may be +49 30 1234567 missing its +, or a national number
    that happens to start with 49; phonenumbers would pick one, so the key is withheld. Where
    the national (trunk) prefix is the country code itself (NANP: 1), there is no ambiguity.
    """
    if region is None or text.startswith(("+", "00")):
        return False
    digits = re.sub(r"\D", "", text)
    code = str(phonenumbers.country_code_for_region(region))
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    trunk = (metadata.national_prefix or "") if metadata else ""
    return digits.startswith(code) and not code.startswith(trunk or "-") and len(digits) > 8


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


GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})

# Local parts of shared mailboxes: they name a team, not a person, and never link automatically.
ROLE_MAILBOXES = frozenset(
    {
        "admin", "administrator", "billing", "contact", "customerservice", "enquiries",
        "hello", "help", "hi", "info", "inquiries", "mail", "marketing", "news",
        "newsletter", "no-reply", "noreply", "do-not-reply", "donotreply", "office",
        "orders", "postmaster", "sales", "service", "support", "team", "webmaster",
    }
)  # fmt: skip


def email_match_key(address: str) -> str:
    """The match form of a normalised address: Gmail's own rules, for Gmail only.

    Gmail ignores dots in the local part and everything after a +, and googlemail.com is the
    same mailbox as gmail.com. Other providers treat dots and + differently (a dot is
    significant at most), so their addresses are left exactly as they are.
    """
    local, _, domain = address.rpartition("@")
    if domain not in GMAIL_DOMAINS:
        return address
    local = local.split("+", 1)[0].replace(".", "")
    return f"{local}@gmail.com" if local else address


def is_role_mailbox(address: str) -> bool:
    """True for info@, team@, support@ ... addresses (a +tag or dots do not hide them)."""
    local = address.rpartition("@")[0].split("+", 1)[0]
    return local in ROLE_MAILBOXES or local.replace(".", "").replace("_", "-") in ROLE_MAILBOXES


def identifier_key(id_type: str, raw: object, *, region: str | None = None) -> IdentifierKey:
    """The match key for an identifier of a type, with the placeholder rule applied.

    Raises InvalidValue for an e-mail that is not an address (a row error); other types
    never raise: what cannot be a key is returned without one, flagged.
    """
    if id_type == IdentifierTypes.EMAIL:
        key = email_match_key(normalize_email(raw))
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


# ---- Matching normalisation: names, addresses, dates (fuzzy matching compares these forms) ----

_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ẞ": "ss"})
# Latin letters that Unicode does not decompose into a base letter and a mark (so NFKD would not
# strip them): their plain spelling, else "Søren Łukasiewicz" would lose letters.
_UNDECOMPOSED = str.maketrans(
    {"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i", "ħ": "h"}
)
# Punctuation and symbols; letters and digits of any script are kept (Иван is a name, not blank).
_NON_WORD_RE = re.compile(r"[\W_]+")

# Street types and their abbreviations, English and German, folded to one spelling.
STREET_TYPES = {
    "st": "street", "str": "strasse", "straße": "strasse", "rd": "road", "ave": "avenue",
    "av": "avenue", "blvd": "boulevard", "dr": "drive", "ln": "lane", "ct": "court",
    "crt": "court", "pl": "place", "sq": "square", "hwy": "highway", "pde": "parade",
    "cres": "crescent", "cr": "crescent", "tce": "terrace", "ter": "terrace", "cl": "close",
    "pkwy": "parkway", "cir": "circle", "mt": "mount", "apt": "apartment", "ste": "suite",
}  # fmt: skip


def fold_text(value: object) -> str:
    """Case, German transliteration (ä/ae ö/oe ü/ue ß/ss), then other diacritics removed.

    Applied to both sides, so Müller, MUELLER and mueller share one form; Zoë and Zoe, Søren
    and Soren too. Punctuation becomes a space; runs of spaces become one; letters of other
    scripts are kept as they are (lower-cased).
    """
    text = clean_text(value).lower().translate(_GERMAN)
    if not text.isascii():  # ASCII has no diacritics: skip the per-character pass
        text = unicodedata.normalize("NFKD", text.translate(_UNDECOMPOSED))
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(_NON_WORD_RE.sub(" ", text).split())


def normalize_name(value: object) -> str:
    """A person's or a place's name in match form (see ``fold_text``)."""
    return fold_text(value)


def normalize_address(value: object) -> str:
    """A street address in match form: folded, street types spelled out.

    "Hauptstr. 5", "Hauptstraße 5" and "HAUPTSTRASSE 5" share one form, as do "12 Kent St"
    and "12 kent street".
    """
    words = []
    for word in fold_text(value).split():
        if word in STREET_TYPES:
            word = STREET_TYPES[word]
        elif word.endswith("str") and len(word) > 5:
            word = word[:-3] + "strasse"
        words.append(word)
    return " ".join(words)


_DATE_FORMATS = (
    (re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ].*)?"), "ymd"),
    (re.compile(r"(\d{4})(\d{2})(\d{2})"), "ymd"),
    (re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})"), "ymd"),
    (re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})"), "dmy"),
    (re.compile(r"(\d{1,2})[/-](\d{1,2})[/-](\d{4})"), "either"),
)


def normalize_date(value: object) -> str:
    """A calendar date as YYYY-MM-DD, or "" when it cannot be read without guessing.

    ISO (with or without a time), YYYYMMDD, DD.MM.YYYY; D/M/YYYY or M/D/YYYY only when one of
    the two numbers is over 12, so 03/04/1990 (March or April?) is no evidence at all.
    """
    import datetime as _dt

    text = clean_text(value)
    for pattern, order in _DATE_FORMATS:
        match = pattern.fullmatch(text)
        if not match:
            continue
        a, b, c = (int(part) for part in match.groups())
        if order == "ymd":
            year, month, day = a, b, c
        elif order == "dmy" or a > 12 >= b:
            day, month, year = a, b, c
        elif b > 12 >= a:
            month, day, year = a, b, c
        elif a == b:
            day = month = a
            year = c
        else:
            return ""
        try:
            return _dt.date(year, month, day).isoformat()
        except ValueError:
            return ""
    return ""
