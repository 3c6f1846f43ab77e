"""The two seams between activation and the apps it reads: segments and consent.

Everything activation needs from them goes through these two functions, which return
subqueries (``values("profile_id")``-style querysets) so callers compose them into one SQL
statement; nothing here loads ids into Python.

- ``segment_member_ids(segment)``: the profile ids of the segment's materialised membership
  (as of its last refresh).
- ``consent_exclusions(profile_ids, destination)``: ``{reason: subquery of profile ids}`` of the
  people to leave out at export time, in the order reasons are counted (a person is counted
  under the first reason that applies). Reasons: ``suppressed`` (erased / on the suppression
  list), ``restricted`` (restriction of processing), ``no_consent`` (the destination's purpose
  is not currently granted: unknown, denied or withdrawn), ``opted_out_of_sale`` (a sale/sharing
  destination only: an opt-out of sale or sharing, e.g. by Global Privacy Control).
"""

from __future__ import annotations

from django.db.models import QuerySet

# The order in which exclusions are counted; activation adds "no_contact_point" last.
CONSENT_REASONS = ("suppressed", "restricted", "no_consent", "opted_out_of_sale")


def segment_member_ids(segment) -> QuerySet:
    """Profile ids in the segment's membership (a subquery)."""
    raise NotImplementedError("segments app not merged yet: pass member_ids explicitly")


def consent_exclusions(profile_ids: QuerySet, destination) -> dict[str, QuerySet]:
    """Profile ids (subqueries) to leave out of ``destination``, by reason (see module doc)."""
    return {}
