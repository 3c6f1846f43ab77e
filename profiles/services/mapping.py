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

from cdp.normalize import IdentifierKey, InvalidValue, clean_text, identifier_key
from profiles.constants import (
    CANONICAL_ATTRIBUTES,
    PRESETS,
    TRAIT_PREFIX,
    AttributeType,
    Transform,
)

# Order in which identities stand in for a missing external key.
KEY_FALLBACK_ORDER = ("customer_id", "user_id", "email", "phone")

_TRUE = {"yes", "y", "true", "t", "1", "on", "subscribed", "ja", "x"}
_FALSE = {"no", "n", "false", "f", "0", "off", "unsubscribed", "nein"}


class RowError(ValueError):
    """A row that cannot be mapped; its message names the column and the reason."""


@dataclass(frozen=True)
class FieldSpec:
    """One column's mapping, as plain values (built from FieldMapping rows or a preset)."""

    column: str
    target: str
    transform: str = Transform.NONE
    identifier: str = ""
    is_key: bool = False


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


def stable_hash(value: object) -> str:
    """SHA-256 of a JSON-serialisable value with sorted keys (row and content hashes)."""
    data = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def default_specs(headers: list[str], preset: str = "") -> list[FieldSpec]:
    """The mapping used when a source has none saved: its preset, or header == attribute name.

    Columns that match no canonical attribute become custom traits under their own name.
    """
    if preset:
        if preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}.")
        by_column = {p.column: p for p in PRESETS[preset]}
        specs = []
        for header in headers:
            p = by_column.get(header)
            if p:
                specs.append(FieldSpec(p.column, p.target, p.transform, p.identifier, p.is_key))
            else:
                specs.append(FieldSpec(header, TRAIT_PREFIX + trait_name(header)))
        return specs
    specs = []
    for header in headers:
        name = trait_name(header)
        if name in CANONICAL_ATTRIBUTES:
            specs.append(FieldSpec(header, name, is_key=name == "customer_id"))
        else:
            specs.append(FieldSpec(header, TRAIT_PREFIX + name))
    return specs


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


def convert_value(attr_type: str, value: object) -> object:
    """Convert a transformed value to the attribute's type; InvalidValue when it is not one."""
    if isinstance(value, bool) or value is None:
        if attr_type in (AttributeType.BOOLEAN, AttributeType.STRING):
            return value
        raise InvalidValue(f"expected {attr_type}, got yes/no")
    text = str(value)
    if attr_type == AttributeType.DATE:
        return parse_iso_date(text)
    if attr_type == AttributeType.NUMBER:
        return parse_number(text)
    if attr_type == AttributeType.INTEGER:
        number = parse_number(text)
        if number != int(number):
            raise InvalidValue(f"{text!r} is not a whole number")
        return int(number)
    if attr_type == AttributeType.BOOLEAN:
        return parse_boolean(text)
    if attr_type == AttributeType.COUNTRY:
        code = text.upper()
        if not re.fullmatch(r"[A-Z]{2}", code):
            raise InvalidValue(f"{text!r} is not a two-letter country code")
        return code
    return text


def parse_iso_date(text: str) -> str:
    try:
        if "T" in text or " " in text.strip():
            return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise InvalidValue(f"{text!r} is not a date in ISO format (YYYY-MM-DD)") from None


def parse_number(text: str) -> float:
    """A number with a decimal point; thousands separators are a row error, never guessed."""
    cleaned = text.replace("\u00a0", "").replace(" ", "")
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", cleaned):
        raise InvalidValue(f"{text!r} is not a number (use a decimal point, no separators)")
    return float(cleaned)


def map_row(row: dict[str, object], specs: list[FieldSpec], *, region: str = "") -> MappedRecord:
    """Map one row to a MappedRecord, or raise RowError naming the column and reason."""
    attributes: dict[str, object] = {}
    traits: dict[str, object] = {}
    identity_values: list[tuple[str, str, str]] = []  # (type, raw, column)
    key_value: tuple[str, str, str] | None = None  # (identifier type or "", raw, column)

    for spec in specs:
        raw = row.get(spec.column)
        text = clean_text(raw)
        if not text:
            continue
        try:
            value = apply_transform(text, spec.transform)
            if spec.target.startswith(TRAIT_PREFIX):
                name = spec.target[len(TRAIT_PREFIX) :]
                identifier = spec.identifier
                if value is not None:
                    traits[name] = value
            else:
                attr = CANONICAL_ATTRIBUTES.get(spec.target)
                if attr is None:
                    raise RowError(f"{spec.column}: unknown attribute {spec.target!r}")
                identifier = spec.identifier or attr.identifier
                if attr.type in (AttributeType.EMAIL, AttributeType.PHONE):
                    value = str(value)  # normalised below, with the identity
                else:
                    value = convert_value(attr.type, value)
                if value is not None:
                    attributes[attr.name] = value
        except InvalidValue as exc:
            raise RowError(f"{spec.column}: {exc}") from None
        if identifier and value is not None:
            identity_values.append((identifier, str(value), spec.column))
        if spec.is_key:
            key_value = (identifier, str(value), spec.column)

    region = str(attributes.get("country") or region or settings.CDP_DEFAULT_PHONE_REGION)
    identities: list[MappedIdentity] = []
    keys: dict[tuple[str, str], IdentifierKey] = {}
    for id_type, raw, column in identity_values:
        try:
            result = identifier_key(id_type, raw, region=region)
        except InvalidValue as exc:
            raise RowError(f"{column}: {exc}") from None
        keys[(id_type, raw)] = result
        identities.append(MappedIdentity(id_type, raw, result.key, result.flag))
        # Canonical e-mail and phone attributes hold the normalised value when there is one.
        for spec in specs:
            if spec.column == column and spec.target in ("email", "phone") and result.key:
                attributes[spec.target] = result.key

    external_key = ""
    if key_value is not None:
        id_type, raw, _column = key_value
        external_key = (keys[(id_type, raw)].key or "") if id_type else raw
    if not external_key:
        for id_type in KEY_FALLBACK_ORDER:
            found = next((i.key for i in identities if i.type == id_type and i.key), None)
            if found:
                external_key = f"{id_type}:{found}"
                break
    if not external_key:
        external_key = "row:" + stable_hash(row)
    return MappedRecord(external_key, attributes, traits, identities)
