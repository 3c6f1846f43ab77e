"""Turning a source row into canonical attributes, custom traits and identities.

Pure functions over plain values: used by file imports, the tracking API and admin previews.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime

from django.conf import settings
from thefuzz import fuzz

from cdp.normalize import IdentifierKey, IdentifierTypes, InvalidValue, clean_text, identifier_key
from profiles.constants import (
    ATTRIBUTE_SYNONYMS,
    CANONICAL_ATTRIBUTES,
    CONSTANT_PREFIX,
    COUNTRY_NAMES,
    PRESETS,
    TRAIT_PREFIX,
    AttributeType,
    DateOrder,
    NumberLocale,
    Transform,
    preset_extra_specs,
)

# Order in which identities stand in for a missing external key.
KEY_FALLBACK_ORDER = ("customer_id", "user_id", "email", "phone")

_TRUE = {"yes", "y", "true", "t", "1", "on", "subscribed", "ja", "x"}
_FALSE = {"no", "n", "false", "f", "0", "off", "unsubscribed", "nein"}


class RowError(ValueError):
    """A row that cannot be mapped; its message names the column and the reason.

    ``reason`` is a short code for the import report (``invalid_email``, ``ambiguous_date``...).
    """

    def __init__(self, message: str, reason: str = "invalid_value"):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class FieldSpec:
    """One column's mapping, as plain values (built from FieldMapping rows or a preset)."""

    column: str
    target: str
    transform: str = Transform.NONE
    identifier: str = ""
    is_key: bool = False
    number_locale: str = NumberLocale.EN
    date_format: str = ""

    @property
    def constant(self) -> str | None:
        """The fixed value of a constant mapping (column ``=value``), else None."""
        return self.column[1:] if self.column.startswith(CONSTANT_PREFIX) else None


@dataclass
class MappedIdentity:
    type: str
    raw_value: str
    key: str | None
    flag: str = ""


@dataclass
class MappedRecord:
    """One customer as one source row describes them."""

    external_key: str
    attributes: dict = field(default_factory=dict)
    traits: dict = field(default_factory=dict)
    identities: list[MappedIdentity] = field(default_factory=list)

    def content_hash(self) -> str:
        ids = sorted((i.type, i.raw_value) for i in self.identities)
        return stable_hash([self.attributes, self.traits, ids])


def stable_json(value: object) -> str:
    """The JSON text ``stable_hash`` hashes: sorted keys, non-ASCII as is."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def stable_hash(value: object) -> str:
    """SHA-256 of a JSON-serialisable value with sorted keys (row and content hashes)."""
    return text_hash(stable_json(value))


def text_hash(text: str) -> str:
    """The hash ``stable_hash`` gives a value, from its ``stable_json`` text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_specs(headers: list[str], preset: str = "") -> list[FieldSpec]:
    """The mapping used when a source has none saved: its preset, or header == attribute name.

    Columns that match no canonical attribute become custom traits under their own name. A
    preset may add constant mappings that depend on which columns the file has (Mailchimp:
    the subscription status of a subscribed, unsubscribed or cleaned export).
    """
    if preset:
        if preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}.")
        by_column = {p.column: p for p in PRESETS[preset]}
        specs = []
        for header in headers:
            p = by_column.get(header)
            if p:
                specs.append(
                    FieldSpec(
                        p.column,
                        p.target,
                        p.transform,
                        p.identifier,
                        p.is_key,
                        date_format=p.date_format,
                    )
                )
            else:
                specs.append(FieldSpec(header, TRAIT_PREFIX + trait_name(header)))
        return specs + preset_constant_specs(preset, headers)
    specs = []
    for header in headers:
        name = trait_name(header)
        if name in CANONICAL_ATTRIBUTES:
            specs.append(FieldSpec(header, name, is_key=name == "customer_id"))
        else:
            specs.append(FieldSpec(header, TRAIT_PREFIX + name))
    return specs


def preset_constant_specs(preset: str, headers: list[str]) -> list[FieldSpec]:
    """Constant mappings a preset derives from the file's columns (see constants.py)."""
    return [
        FieldSpec(CONSTANT_PREFIX + value, target, transform)
        for value, target, transform in preset_extra_specs(preset, headers)
    ]


def trait_name(header: str) -> str:
    """A column header as a trait name: trimmed, lower-case, spaces and dashes as underscores."""
    return re.sub(r"[\s\-]+", "_", clean_text(header).lower())


def apply_transform(value: str, transform: str) -> str | bool | None:
    if transform == Transform.LOWER:
        return value.lower()
    if transform == Transform.UPPER:
        return value.upper()
    if transform == Transform.TITLE:
        return value.title()
    if transform == Transform.STRIP_APOSTROPHE:
        return value[1:] if value.startswith("'") else value
    if transform in (Transform.BOOLEAN, Transform.BOOLEAN_INVERTED):
        parsed = parse_boolean(value)
        if parsed is not None and transform == Transform.BOOLEAN_INVERTED:
            return not parsed
        return parsed
    return value


def parse_boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidValue(f"{value!r} is not yes/no")


def convert_value(
    attr_type: str,
    value: object,
    *,
    number_locale: str = NumberLocale.EN,
    date_format: str = "",
    date_order: str = "",
) -> object:
    """Convert a transformed value to the attribute's type; InvalidValue when it is not one."""
    if isinstance(value, bool) or value is None:
        if attr_type in (AttributeType.BOOLEAN, AttributeType.STRING):
            return value
        raise InvalidValue(f"expected {attr_type}, got yes/no")
    text = str(value)
    if attr_type == AttributeType.DATE:
        return parse_date(text, date_format=date_format, order=date_order)
    if attr_type == AttributeType.NUMBER:
        return parse_number(text, number_locale)
    if attr_type == AttributeType.INTEGER:
        number = parse_number(text, number_locale)
        if number != int(number):
            raise InvalidValue(f"{text!r} is not a whole number")
        return int(number)
    if attr_type == AttributeType.BOOLEAN:
        return parse_boolean(text)
    if attr_type == AttributeType.COUNTRY:
        return parse_country(text)
    return text


def parse_country(text: str) -> str:
    """A two-letter ISO 3166 code, or an English country name HubSpot/Salesforce exports use."""
    code = text.strip().upper()
    if re.fullmatch(r"[A-Z]{2}", code):
        return code
    named = COUNTRY_NAMES.get(re.sub(r"\s+", " ", text.strip().lower()))
    if named:
        return named
    raise InvalidValue(f"{text!r} is not a two-letter country code or a known country name")


def parse_iso_date(text: str) -> str:
    try:
        if "T" in text or " " in text.strip():
            return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise InvalidValue(f"{text!r} is not a date in ISO format (YYYY-MM-DD)") from None


# d/m/y, m/d/y, d.m.y, d-m-y with a 2- or 4-digit year, optionally followed by a time.
_NUMERIC_DATE = re.compile(r"(\d{1,2})([./-])(\d{1,2})\2(\d{4}|\d{2})(?:[ T,]+\d{1,2}:\d{2}.*)?")
_ISO_START = re.compile(r"\d{4}-\d{2}-\d{2}")


def date_evidence(text: str) -> str:
    """What one value says about its column's day/month order.

    ``iso`` (no order needed), ``dmy`` or ``mdy`` (a part over 12 settles it), ``dotted``
    (d.m.y: day first by convention), ``either`` (both parts 12 or less) or ``""`` (no date).
    """
    text = text.strip()
    if _ISO_START.match(text):
        return "iso"
    match = _NUMERIC_DATE.fullmatch(text)
    if not match:
        return ""
    first, separator, second = int(match.group(1)), match.group(2), int(match.group(3))
    if separator == ".":
        return "dotted"
    if first > 12 >= second:
        return DateOrder.DAY_FIRST
    if second > 12 >= first:
        return DateOrder.MONTH_FIRST
    return "either"


def date_order_from_evidence(evidence: set[str]) -> str:
    """The order of a whole column from the evidence of all its values."""
    settled = evidence & {DateOrder.DAY_FIRST, DateOrder.MONTH_FIRST}
    if len(settled) == 2:
        return DateOrder.CONFLICT
    if settled:
        return settled.pop()
    if "either" in evidence:
        return DateOrder.AMBIGUOUS
    return ""


_FORMAT_LABELS = {"%d": "DD", "%m": "MM", "%Y": "YYYY", "%y": "YY", "%b": "Mon", "%B": "Month",
                  "%H": "hh", "%M": "mm", "%S": "ss", "%%": "%"}  # fmt: skip


def date_format_label(date_format: str) -> str:
    """A strptime format as people write it: ``%d/%m/%Y`` -> ``DD/MM/YYYY``."""
    return re.sub(r"%.", lambda m: _FORMAT_LABELS.get(m.group(), m.group()), date_format)


def parse_date(text: str, *, date_format: str = "", order: str = "") -> str:
    """A date as ISO text: ISO input, an explicit strptime format, or d/m/y in a known order.

    ISO values are read in every column, also one with an explicit format.
    ``order`` is what the whole column showed (see ``date_order_from_evidence``); a d/m/y value
    in a column whose order is ambiguous or contradictory is an error, never a guess.
    """
    text = text.strip()
    if date_format:
        label = date_format_label(date_format)
        try:
            if _ISO_START.match(text):
                return parse_iso_date(text)
            return datetime.strptime(text, date_format).date().isoformat()  # noqa: DTZ007
        except (ValueError, InvalidValue):
            # The chosen format is named as the user chose it; an ISO-looking value may be ISO.
            also = " (or ISO, YYYY-MM-DD)" if _ISO_START.match(text) else ""
            raise InvalidValue(f"{text!r} is not a date in the format {label}{also}") from None
    if _ISO_START.match(text):
        return parse_iso_date(text)
    match = _NUMERIC_DATE.fullmatch(text)
    if not match:
        raise InvalidValue(f"{text!r} is not a date (ISO YYYY-MM-DD, or day/month/year)")
    first, separator, second, year = (
        int(match.group(1)),
        match.group(2),
        int(match.group(3)),
        match.group(4),
    )
    if separator == ".":
        order = DateOrder.DAY_FIRST
    elif order == DateOrder.AMBIGUOUS:
        raise InvalidValue(
            f"{text!r}: no value in this column shows whether the day or the month comes "
            "first; choose a date format in the mapping"
        )
    elif order == DateOrder.CONFLICT:
        raise InvalidValue(
            f"{text!r}: this column has both day-first and month-first dates; choose a date "
            "format in the mapping"
        )
    elif order not in (DateOrder.DAY_FIRST, DateOrder.MONTH_FIRST):
        order = date_order_from_evidence({date_evidence(text)})
        if order not in (DateOrder.DAY_FIRST, DateOrder.MONTH_FIRST):
            raise InvalidValue(
                f"{text!r}: day and month could be either way round; choose a date format"
            )
    day, month = (first, second) if order == DateOrder.DAY_FIRST else (second, first)
    full_year = int(year) if len(year) == 4 else _two_digit_year(int(year))
    try:
        return date(full_year, month, day).isoformat()
    except ValueError:
        raise InvalidValue(f"{text!r} is not a valid date") from None


def _two_digit_year(year: int) -> int:
    """Two-digit years: 00-29 are 2000s, 30-99 are 1900s (the POSIX/strptime pivot is 69)."""
    return 2000 + year if year < 30 else 1900 + year


_DE_NUMBER = re.compile(r"[+-]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?")
_EN_NUMBER = re.compile(r"[+-]?((\d{1,3}(,\d{3})+|\d+)(\.\d*)?|\.\d+)")
_NUMBER_SPACES = str.maketrans("", "", " \u00a0\u202f")


def parse_number(text: str, locale: str = NumberLocale.EN) -> float:
    """A number in the mapping's locale; a separator that does not fit is an error, never a guess.

    ``en``: a decimal point with optional comma thousands separators (``1,234.50``; ``1,234`` is
    1234). ``de``: a decimal comma with optional dot thousands separators (``1.234,50``;
    ``1.234`` is 1234). Spaces (also no-break) between digit groups are ignored in both.
    """
    cleaned = text.translate(_NUMBER_SPACES)
    if locale == NumberLocale.DE:
        if not _DE_NUMBER.fullmatch(cleaned):
            raise InvalidValue(
                f"{text!r} is not a number in German format (decimal comma, e.g. 1.234,50)"
            )
        return float(cleaned.replace(".", "").replace(",", "."))
    if not _EN_NUMBER.fullmatch(cleaned):
        if _DE_NUMBER.fullmatch(cleaned):
            raise InvalidValue(
                f"{text!r} is not a number with a decimal point (e.g. 1,234.50); for a "
                "decimal comma choose the number format 1.234,50 in the mapping"
            )
        raise InvalidValue(f"{text!r} is not a number (decimal point, e.g. 1,234.50)")
    return float(cleaned.replace(",", ""))


NUMBER_CONFLICT = "conflict"


def number_evidence(text: str) -> str:
    """What one value says about its column's decimal separator.

    ``de`` (a decimal comma: ``12,5``, ``1.234,56``, ``1.234.567``), ``en`` (a decimal point:
    ``12.5``, ``1,234.50``, ``1,234,567``), ``comma3``/``dot3`` (one separator followed by
    exactly three digits, ``1,234``/``1.234``: a thousands or a decimal separator) or ``""``
    (no separator, or not a number).
    """
    cleaned = text.strip().translate(_NUMBER_SPACES).lstrip("+-")
    if not cleaned or not re.fullmatch(r"[\d.,]+", cleaned):
        return ""
    if "," in cleaned and "." in cleaned:
        return NumberLocale.DE if cleaned.rfind(",") > cleaned.rfind(".") else NumberLocale.EN
    separator = "," if "," in cleaned else "." if "." in cleaned else ""
    if not separator:
        return ""
    groups = cleaned.split(separator)
    if len(groups) > 2:  # several of one separator: thousands separators
        return NumberLocale.EN if separator == "," else NumberLocale.DE
    if len(groups[1]) == 3 and 1 <= len(groups[0]) <= 3:
        return "comma3" if separator == "," else "dot3"
    return NumberLocale.DE if separator == "," else NumberLocale.EN


def number_locale_from_evidence(evidence: set[str], *, delimiter: str = ",") -> str:
    """The number format of a whole column from the evidence of all its values and the
    file's delimiter.

    A decimal comma is only suggested in a file not delimited by commas: the spreadsheets of
    decimal-comma locales write semicolons (or tabs), and a comma file holds a decimal comma
    only quoted, which is far more often a mistake than a convention. There a value that
    settles it decides (``de`` or ``en``; both: ``conflict``) and a column whose values are all
    ambiguous (``1,234``, ``1.234``) has a decimal comma. In a comma-delimited file a column
    with numbers is read with a decimal point, unless a value shows a decimal comma (then no
    suggestion: those rows are rejected with the hint to choose 1.234,50). ``""`` when no
    value has a separator.
    """
    settled = evidence & {NumberLocale.DE, NumberLocale.EN}
    if delimiter == ",":
        if NumberLocale.DE in settled or not evidence - {""}:
            return ""
        return NumberLocale.EN
    if len(settled) == 2:
        return NUMBER_CONFLICT
    if settled:
        return str(settled.pop())
    if evidence & {"comma3", "dot3"}:
        return NumberLocale.DE
    return ""


_REASONS = {
    AttributeType.EMAIL: "invalid_email",
    AttributeType.DATE: "invalid_date",
    AttributeType.NUMBER: "invalid_number",
    AttributeType.INTEGER: "invalid_number",
    AttributeType.BOOLEAN: "invalid_boolean",
    AttributeType.COUNTRY: "invalid_country",
}


def _reason(attr_type: str, message: str) -> str:
    if "choose a date format" in message:
        return "ambiguous_date"
    if "yes/no" in message:
        return "invalid_boolean"
    return _REASONS.get(attr_type, "invalid_value")


def map_row(
    row: dict[str, object],
    specs: list[FieldSpec],
    *,
    region: str = "",
    date_orders: dict[str, str] | None = None,
) -> MappedRecord:
    """Map one row to a MappedRecord, or raise RowError naming the column and reason.

    ``date_orders`` is the day/month order inferred per column from the whole file. To map many
    rows with one mapping, use a ``RowMapper`` (the same result, with the mapping compiled once).
    """
    return RowMapper(specs, region=region, date_orders=date_orders).map(row)


# Attribute types whose conversion is a pure function of the text and worth remembering per
# distinct value (countries, dates, yes/no and amounts repeat across a file's rows).
_MEMO_TYPES = frozenset(
    {
        AttributeType.DATE,
        AttributeType.NUMBER,
        AttributeType.INTEGER,
        AttributeType.BOOLEAN,
        AttributeType.COUNTRY,
    }
)
_MEMO_LIMIT = 50_000  # distinct (column, value) results kept before the memo starts afresh


@dataclass(frozen=True)
class _Step:
    """One spec compiled for mapping rows (see RowMapper)."""

    column: str
    constant: str | None  # the cleaned constant of a constant mapping
    transform: str
    trait: str  # the trait name for a custom trait, else ""
    attr: object  # the canonical Attribute, or None (trait, or unknown target)
    target: str
    identifier: str
    is_key: bool
    number_locale: str
    date_format: str
    date_order: str
    memo: bool


class RowMapper:
    """Maps rows with one mapping: ``map_row`` with the specs compiled once.

    Conversions that depend only on the text (dates, numbers, yes/no, countries, transforms)
    are remembered per column and distinct value, errors included, so a file's repeated
    values are converted once. Identities go through ``identifier_key`` (cdp/normalize.py),
    the one normalisation.
    """

    def __init__(
        self,
        specs: list[FieldSpec],
        *,
        region: str = "",
        date_orders: dict[str, str] | None = None,
    ) -> None:
        date_orders = date_orders or {}
        self.region = region
        self.key_columns = sum(1 for spec in specs if spec.is_key)
        self.steps: list[_Step] = []
        for spec in specs:
            constant = spec.constant
            trait = spec.target[len(TRAIT_PREFIX) :] if spec.target.startswith(TRAIT_PREFIX) else ""
            attr = None if trait else CANONICAL_ATTRIBUTES.get(spec.target)
            memo = spec.transform in (Transform.BOOLEAN, Transform.BOOLEAN_INVERTED) or (
                attr is not None and attr.type in _MEMO_TYPES
            )
            self.steps.append(
                _Step(
                    column=spec.column,
                    constant=clean_text(constant) if constant is not None else None,
                    transform=spec.transform,
                    trait=trait,
                    attr=attr,
                    target=spec.target,
                    identifier=spec.identifier or (attr.identifier if attr else ""),
                    is_key=spec.is_key,
                    number_locale=spec.number_locale,
                    date_format=spec.date_format,
                    date_order=date_orders.get(spec.column, ""),
                    memo=memo,
                )
            )
        # Columns mapped to the canonical e-mail or phone attribute: target names per column.
        self.contact_targets: dict[str, list[str]] = {}
        for spec in specs:
            if spec.target in ("email", "phone"):
                self.contact_targets.setdefault(spec.column, []).append(spec.target)
        self.memo: dict[tuple[int, str], tuple[bool, object, str]] = {}

    def _value(self, step: _Step, text: str) -> object:
        """The converted value of one non-empty cell; RowError when it is not one."""
        attr_type = AttributeType.STRING
        try:
            value = apply_transform(text, step.transform)
            if step.trait:
                return value
            attr = step.attr
            if attr is None:
                raise RowError(
                    f"{step.column}: unknown attribute {step.target!r}", "unknown_attribute"
                )
            attr_type = attr.type
            if attr_type in (AttributeType.EMAIL, AttributeType.PHONE):
                return str(value)  # normalised below, with the identity
            return convert_value(
                attr_type,
                value,
                number_locale=step.number_locale,
                date_format=step.date_format,
                date_order=step.date_order,
            )
        except InvalidValue as exc:
            raise RowError(f"{step.column}: {exc}", _reason(attr_type, str(exc))) from None

    def _memo_value(self, index: int, step: _Step, text: str) -> object:
        memo = self.memo
        found = memo.get((index, text))
        if found is None:
            try:
                found = (True, self._value(step, text), "")
            except RowError as exc:
                found = (False, str(exc), exc.reason)
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[(index, text)] = found
        ok, value, reason = found
        if not ok:
            raise RowError(value, reason)
        return value

    def map(self, row: dict[str, object]) -> MappedRecord:
        """Map one row to a MappedRecord, or raise RowError naming the column and reason."""
        attributes: dict[str, object] = {}
        traits: dict[str, object] = {}
        identity_values: list[tuple[str, str, str]] = []  # (type, raw, column)
        key_values: list[tuple[str, str, str]] = []  # (identifier type or "", raw, column)

        for index, step in enumerate(self.steps):
            text = step.constant if step.constant is not None else clean_text(row.get(step.column))
            if not text:
                continue
            memo = step.memo
            value = self._memo_value(index, step, text) if memo else self._value(step, text)
            if value is not None:
                if step.trait:
                    traits[step.trait] = value
                else:
                    attributes[step.attr.name] = value
                if step.identifier:
                    identity_values.append((step.identifier, str(value), step.column))
                if step.is_key:
                    key_values.append((step.identifier, str(value), step.column))

        region = str(attributes.get("country") or self.region or settings.CDP_DEFAULT_PHONE_REGION)
        identities: list[MappedIdentity] = []
        keys: dict[tuple[str, str], IdentifierKey] = {}
        for id_type, raw, column in identity_values:
            try:
                result = identifier_key(id_type, raw, region=region)
            except InvalidValue as exc:
                raise RowError(f"{column}: {exc}", "invalid_email") from None
            keys[(id_type, raw)] = result
            identities.append(MappedIdentity(id_type, raw, result.key, result.flag))
            for target in self.contact_targets.get(column, ()):
                if result.key:
                    # Canonical e-mail and phone attributes hold the normalised value.
                    attributes[target] = result.key
                elif target == "phone" and result.flag.startswith("scientific"):
                    # 2.02555E+09 lost its last digits in a spreadsheet: never a phone number.
                    attributes.pop("phone", None)

        # Key columns, in mapping order; several form one key, and only when all have a value.
        parts = [(keys[(t, raw)].key or "") if t else raw for t, raw, _column in key_values]
        external_key = ""
        if parts and len(parts) == self.key_columns and all(parts):
            external_key = parts[0] if len(parts) == 1 else "|".join(_key_part(p) for p in parts)
        if not external_key:
            for id_type in KEY_FALLBACK_ORDER:
                found = next((i.key for i in identities if i.type == id_type and i.key), None)
                if found:
                    external_key = f"{id_type}:{found}"
                    break
        if not external_key:
            external_key = "row:" + stable_hash(row)
        return MappedRecord(external_key, attributes, traits, identities)


def _key_part(value: str) -> str:
    """One part of a composite key, with | and \\ escaped so that different parts never join
    to the same key."""
    return value.replace("\\", "\\\\").replace("|", "\\|")


def mapping_conflicts(specs: list[FieldSpec]) -> list[str]:
    """Why a mapping cannot be saved: each target (attribute or custom trait) taken by more than
    one column, as a message naming the columns. Empty when the mapping is sound.

    A row holds one value per attribute, so two columns on one target would overwrite each
    other (or, for ``email``/``phone``, turn one column's values into invalid identities and
    reject every row). Several columns may yield the same *identity type*: one column on the
    canonical attribute, the others on custom traits with that identity type. Constant preset
    mappings are not columns and are left out (they never override a mapped column).
    """
    columns: dict[str, list[str]] = {}
    for spec in specs:
        if spec.constant is None:
            columns.setdefault(spec.target, []).append(spec.column)
    problems = []
    for target, names in columns.items():
        if len(names) < 2:
            continue
        listed = ", ".join(names[:-1]) + " and " + names[-1]
        listed += " are both" if len(names) == 2 else " are all"
        if target.startswith(TRAIT_PREFIX):
            problems.append(
                f"{listed} mapped to the custom trait {target[len(TRAIT_PREFIX) :]}: "
                "a trait takes one column. Give each its own trait name."
            )
            continue
        attr = CANONICAL_ATTRIBUTES.get(target)
        label = f"{attr.label} ({target})" if attr else target
        hint = (
            " To keep another column as an identity too, map it to a custom trait and choose "
            "its identity type."
            if attr and attr.identifier
            else ""
        )
        problems.append(f"{listed} mapped to {label}: an attribute takes one column.{hint}")
    return problems


def number_columns(specs: list[FieldSpec]) -> list[str]:
    """Columns mapped to a number attribute: their number format is inferred (a suggestion)."""
    return [
        s.column
        for s in specs
        if s.constant is None
        and (attr := CANONICAL_ATTRIBUTES.get(s.target)) is not None
        and attr.type in (AttributeType.NUMBER, AttributeType.INTEGER)
    ]


def date_columns(specs: list[FieldSpec]) -> list[str]:
    """Columns mapped to a date attribute without an explicit format: their order is inferred."""
    return [
        s.column
        for s in specs
        if s.constant is None
        and not s.date_format
        and (attr := CANONICAL_ATTRIBUTES.get(s.target)) is not None
        and attr.type == AttributeType.DATE
    ]


SUGGEST_THRESHOLD = 80


@dataclass(frozen=True)
class Suggestion:
    """A suggested mapping for one column, with how sure it is and why."""

    spec: FieldSpec
    score: int  # 0-100; 100 for a preset column or an exact name
    reason: str


def _header_words(header: str) -> str:
    text = clean_text(header).lower()
    return re.sub(r"[\s_\-/.:]+", " ", text).strip()


def _attribute_aliases() -> dict[str, list[str]]:
    aliases = {}
    for name, attr in CANONICAL_ATTRIBUTES.items():
        words = {name.replace("_", " "), attr.label.lower(), *ATTRIBUTE_SYNONYMS.get(name, [])}
        aliases[name] = sorted(_header_words(w) for w in words)
    return aliases


def suggest_specs(
    headers: list[str], preset: str = "", *, taken: frozenset[str] = frozenset()
) -> list[Suggestion]:
    """Suggest a mapping for these headers: preset columns, else fuzzy match to attributes.

    ``taken``: attributes already mapped elsewhere (a source's saved mapping); never suggested.

    Each header is scored against every canonical attribute's name, label and synonyms
    (thefuzz ratio and token-sort ratio, so word order and punctuation do not matter). Pairs are
    assigned best score first, each attribute to at most one column; a column scoring under
    SUGGEST_THRESHOLD becomes a custom trait (an e-mail- or phone-like one still an identity).
    """
    preset_columns = {p.column: p for p in PRESETS.get(preset, [])}
    aliases = _attribute_aliases()
    result: dict[str, Suggestion] = {}
    taken = set(taken)
    scored: list[tuple[int, int, str, str, str]] = []
    for index, header in enumerate(headers):
        p = preset_columns.get(header)
        if p is not None:
            spec = FieldSpec(p.column, p.target, p.transform, p.identifier, p.is_key)
            spec = FieldSpec(**{**spec.__dict__, "date_format": p.date_format})
            result[header] = Suggestion(spec, 100, f"{preset} preset")
            if not p.target.startswith(TRAIT_PREFIX):
                taken.add(p.target)
            continue
        words = _header_words(header)
        for name, names in aliases.items():
            best, best_alias = 0, ""
            for alias in names:
                score = max(fuzz.ratio(words, alias), fuzz.token_sort_ratio(words, alias))
                if score > best:
                    best, best_alias = score, alias
            scored.append((best, -index, header, name, best_alias))
    for score, _index, header, name, alias in sorted(scored, reverse=True):
        if header in result or name in taken or score < SUGGEST_THRESHOLD:
            continue
        taken.add(name)
        spec = FieldSpec(header, name, is_key=name == "customer_id")
        if score < 100:
            reason = f"similar to {alias!r}"
        elif alias in (_header_words(name), _header_words(CANONICAL_ATTRIBUTES[name].label)):
            reason = "same name"
        else:  # a synonym (Geburtsdatum, Vorname): not the attribute's own name
            reason = f"known name {alias!r}"
        result[header] = Suggestion(spec, score, reason)
    suggestions = []
    for header in headers:
        if header in result:
            suggestions.append(result[header])
            continue
        words = _header_words(header)
        identifier = ""
        if re.search(r"\b(e ?mail)\b", words):
            identifier = IdentifierTypes.EMAIL
        elif re.search(r"\b(phone|mobile|tel|telefon|handy)\b", words):
            identifier = IdentifierTypes.PHONE
        spec = FieldSpec(header, TRAIT_PREFIX + trait_name(header), identifier=identifier)
        suggestions.append(Suggestion(spec, 0, "no similar attribute: kept as a custom trait"))
    suggestions += [
        Suggestion(spec, 100, f"{preset} preset: fixed for this file")
        for spec in preset_constant_specs(preset, headers)
    ]
    return suggestions
