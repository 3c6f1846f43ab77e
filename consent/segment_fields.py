"""Consent as fields of the segment registry (discovered by ``segments.registry``).

One field per purpose, listed in the builder as "Consent: <purpose name>" (key
``consent:<purpose key>``): the current state of the purpose on any channel. A channel-specific
field ``consent:<purpose key>:<channel key>`` can be typed or sent through the API; it is not
listed, to keep the palette to one entry per purpose (docs/privacy.md, "Consent in segments").

The value is one of granted / denied / withdrawn / unknown: the newest decision by capture
time, a decision on channel ``all`` counting for every channel, ``unknown`` when there is none.
The rule lives in one place, ``consent.selectors.consent_status_subquery``; here it is only
coalesced to ``unknown``, so the value is never SQL NULL and "is not granted" includes the
people who never decided. Purposes are read when a field is named or the palette is listed, so
a purpose added later appears without rebuilding the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.db.models.lookups import Exact, In, IsNull

from consent.models import Channel, ConsentRecord, ConsentStatus, Purpose
from consent.selectors import consent_status_subquery
from segments.registry import Field, FieldFamily, FieldType, Registry, Target

PREFIX = "consent:"
GROUP = "Consent"
UNKNOWN = "unknown"
CHOICES = (*ConsentStatus.choices, (UNKNOWN, "Unknown (no decision)"))
KEY = r"[-a-zA-Z0-9_]{1,50}"
LOOKUPS = {"exact": Exact, "in": In}


@dataclass(frozen=True)
class ConsentStatusTarget(Target):
    """The current consent status of a purpose (on a channel) of the profile."""

    purpose: str = ""
    channel: str | None = None

    def status(self):
        return Coalesce(consent_status_subquery(self.purpose, self.channel), Value(UNKNOWN))

    def present(self) -> Q:
        """The person decided (granted, denied or withdrawn)."""
        return Q(IsNull(consent_status_subquery(self.purpose, self.channel), False))

    def matches(self, lookups: dict, *, strict: bool = True) -> Q:
        condition = Q()
        for lookup, value in lookups.items():
            condition &= Q(LOOKUPS[lookup](self.status(), value))
        return condition

    def values_queryset(self):
        records = ConsentRecord.objects.filter(purpose__key=self.purpose)
        if self.channel:
            records = records.filter(channel__key__in=[self.channel, Channel.ALL])
        return records, F("status")


def consent_field(name: str) -> Field | None:
    """``<purpose>`` or ``<purpose>:<channel>``; None when either is unknown."""
    purpose_key, _, channel_key = name.partition(":")
    purpose = Purpose.objects.filter(key=purpose_key).values_list("name", flat=True).first()
    if purpose is None:
        return None
    label = f"Consent: {purpose}"
    if channel_key:
        channel = Channel.objects.filter(key=channel_key).values_list("name", flat=True).first()
        if channel is None:
            return None
        label += f" ({channel})"
    return Field(
        key=PREFIX + name,
        label=label,
        type=FieldType.STRING,
        target=ConsentStatusTarget(PREFIX + name, purpose=purpose_key, channel=channel_key or None),
        group=GROUP,
        description=(
            "The current decision (newest by capture time; a decision on channel 'all' counts "
            "for every channel); unknown when the person never decided."
        ),
        choices=CHOICES,
    )


def register(registry: Registry) -> None:
    registry.register_family(
        FieldFamily(
            prefix=PREFIX,
            label="Consent",
            group=GROUP,
            name_pattern=f"{KEY}(:{KEY})?",
            build=consent_field,
            list_names=lambda: list(Purpose.objects.values_list("key", flat=True)),
        )
    )
