"""The two seams between activation and the apps it reads: segments and consent.

Everything activation needs from them goes through these two functions, which return
subqueries (one-column querysets of profile ids) so callers compose them into one SQL
statement; nothing here loads ids into Python.

- ``segment_member_ids(segment)``: the profile ids of the segment's materialised membership
  (as of its last refresh).
- ``consent_exclusions(profile_ids, destination)``: ``{reason: ids}`` of the people to leave out
  at export time, in the order reasons are counted (a person is counted under the first reason
  that applies). ``ids`` is either a subquery of the ids to leave out, or ``OnlyThose(subquery)``:
  leave out everyone *not* in it (used for "granted", so that unknown counts as not granted
  and the test stays a join). Reasons:

  - ``suppressed``: a profile carrying an identifier on the suppression list (erased people);
  - ``restricted``: restriction of processing;
  - ``no_consent``: the destination's purpose is not currently granted (unknown, denied or
    withdrawn) on its channel (or any channel when none is set);
  - ``opted_out_of_sale``: only for a sale/sharing destination: the current state of a
    sale/sharing purpose is denied or withdrawn (a Global Privacy Control signal, an objection).
"""

from __future__ import annotations

from typing import NamedTuple

from django.db.models import F, QuerySet, Value
from django.db.models.functions import Concat

from activation.db import HmacSha256
from consent.hashing import _salt
from consent.models import (
    RESTRICTIVE_STATUSES,
    Channel,
    ConsentRecord,
    ConsentStatus,
    Suppression,
)
from consent.selectors import newest_consent_records, restricted_profile_ids
from profiles.models import Identity
from segments.models import SegmentMembership

CONSENT_REASONS = ("suppressed", "restricted", "no_consent", "opted_out_of_sale")


class OnlyThose(NamedTuple):
    """Leave out everyone who is not in ``ids``."""

    ids: QuerySet


def segment_member_ids(segment) -> QuerySet:
    """Profile ids in the segment's membership (a subquery)."""
    return SegmentMembership.objects.filter(segment=segment).values("profile_id")


def consent_exclusions(profile_ids: QuerySet, destination) -> dict[str, QuerySet | OnlyThose]:
    """Profile ids (subqueries) to leave out of ``destination``, by reason (see module doc)."""
    reasons: dict[str, QuerySet | OnlyThose] = {}
    if Suppression.objects.exists():
        reasons["suppressed"] = _suppressed_profile_ids(profile_ids)
    reasons["restricted"] = restricted_profile_ids()
    if destination.consent_purpose:
        records = ConsentRecord.objects.filter(
            profile_id__in=profile_ids, purpose__key=destination.consent_purpose
        )
        if destination.consent_channel:
            records = records.filter(channel__key__in=[destination.consent_channel, Channel.ALL])
        granted = newest_consent_records(records, ["profile_id"]).filter(
            status=ConsentStatus.GRANTED
        )
        reasons["no_consent"] = OnlyThose(granted.values("profile_id"))
    if destination.is_sale_or_sharing:
        records = ConsentRecord.objects.filter(
            profile_id__in=profile_ids, purpose__is_sale_or_sharing=True
        )
        opted_out = newest_consent_records(records, ["profile_id", "purpose_id"]).filter(
            status__in=RESTRICTIVE_STATUSES
        )
        reasons["opted_out_of_sale"] = opted_out.values("profile_id")
    return reasons


def _suppressed_profile_ids(profile_ids: QuerySet) -> QuerySet:
    """Members with an identity whose salted hash is on the suppression list, hashed in SQL
    with the same HMAC as consent.hashing.identifier_hash."""
    hashed = (
        Identity.objects.filter(profile_id__in=profile_ids, key__isnull=False)
        .annotate(_hash=HmacSha256(Concat(F("type"), Value(":"), F("key")), key=_salt().decode()))
        .filter(
            _hash__in=Suppression.objects.values("key_hash"),
        )
    )
    return hashed.values("profile_id")
