"""Recording consent: one decision at a time (API, form, admin), per import batch, from GPC,
and across merges and unmerges. Records are only ever appended.

Import semantics (docs/privacy.md): canonical attributes
``accepts_email_marketing`` / ``accepts_sms_marketing`` (True = opt-in, False = opt-out),
``email_opt_out`` (True = opted out; False says nothing), ``email_subscription_status``
(subscribed / unsubscribed; cleaned = undeliverable, not a consent decision), with the explicit
times ``email_opt_in_at`` / ``email_opt_out_at`` / ``email_cleaned_at``. An opt-in from a bulk
import replaces an earlier opt-out only when it carries an explicit opt-in time newer than that
opt-out.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from cdp.audit import audit_record
from consent.models import (
    RESTRICTIVE_STATUSES,
    Channel,
    ConsentRecord,
    ConsentSource,
    ConsentStatus,
    LawfulBasis,
    Purpose,
    Restriction,
)

EMAIL_MARKETING = "email_marketing"
SMS_MARKETING = "sms_marketing"
SALE_SHARING = "sale_sharing"


# A decision cannot be captured later than now: a clock a little ahead is tolerated, a time
# further ahead would make the decision "newest" forever (no later withdrawal could win).
FUTURE_TOLERANCE = timedelta(minutes=5)


class ConsentError(ValueError):
    """A consent decision that cannot be recorded (unknown purpose or channel, bad status)."""


def consent_decision_check(
    *,
    purpose: str,
    channel: str,
    status: str,
    source: str,
    lawful_basis: str = LawfulBasis.CONSENT,
    captured_at: datetime | None = None,
) -> tuple[Purpose, Channel]:
    """Validate one decision before anything is written; returns its purpose and channel."""
    if status not in ConsentStatus.values:
        raise ConsentError(f"status must be one of {', '.join(ConsentStatus.values)}")
    if lawful_basis not in LawfulBasis.values:
        raise ConsentError(f"lawful_basis must be one of {', '.join(LawfulBasis.values)}")
    if source not in ConsentSource.values:
        raise ConsentError(f"source must be one of {', '.join(ConsentSource.values)}")
    if captured_at is not None and captured_at > timezone.now() + FUTURE_TOLERANCE:
        raise ConsentError("captured_at is in the future")
    purpose_obj = Purpose.objects.filter(key=purpose).first()
    if purpose_obj is None:
        raise ConsentError(f"unknown purpose {purpose!r}")
    channel_obj = Channel.objects.filter(key=channel).first()
    if channel_obj is None:
        raise ConsentError(f"unknown channel {channel!r}")
    return purpose_obj, channel_obj


@dataclass
class _State:
    status: str
    captured_at: datetime
    record_id: int | None


def _purpose_ids() -> dict[str, int]:
    return dict(Purpose.objects.values_list("key", "id"))


def _channel_ids() -> dict[str, int]:
    return dict(Channel.objects.values_list("key", "id"))


def parse_consent_time(value: object) -> datetime | None:
    """An explicit consent time from a source (ISO 8601 or Mailchimp's 'YYYY-MM-DD HH:MM:SS')."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip().replace("Z", "+00:00")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed > timezone.now() + FUTURE_TOLERANCE:
        return None  # not trusted: the import time stands in (see FUTURE_TOLERANCE)
    return parsed


def current_states(
    *, profile_ids: list[int], purpose_ids: list[int] | None = None
) -> dict[int, dict[tuple[int, int], _State]]:
    """Newest decision per profile x purpose x channel (channel ids as stored), in one query."""
    states: dict[int, dict[tuple[int, int], _State]] = defaultdict(dict)
    if not profile_ids:
        return states
    rows = ConsentRecord.objects.filter(profile_id__among=profile_ids)
    if purpose_ids is not None:
        rows = rows.filter(purpose_id__in=purpose_ids)
    for pid, purpose_id, channel_id, status, captured, rid in rows.order_by(
        "captured_at", "id"
    ).values_list("profile_id", "purpose_id", "channel_id", "status", "captured_at", "id"):
        states[pid][(purpose_id, channel_id)] = _State(status, captured, rid)
    return states


def effective_state(
    states: dict[tuple[int, int], _State], purpose_id: int, channel_id: int, all_id: int
) -> _State | None:
    """The state for a purpose on a channel: the newer of that channel's and 'all' channels'."""
    candidates = [
        s for s in (states.get((purpose_id, channel_id)), states.get((purpose_id, all_id))) if s
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda s: (s.captured_at, s.record_id or 0))


@transaction.atomic
def consent_record(
    *,
    profile,
    purpose: str,
    channel: str,
    status: str,
    source: str,
    lawful_basis: str = LawfulBasis.CONSENT,
    captured_at: datetime | None = None,
    evidence: dict | None = None,
    recorded_by=None,
    source_record_id: int | None = None,
) -> ConsentRecord:
    """Append one decision for a profile; audited."""
    purpose_obj, channel_obj = consent_decision_check(
        purpose=purpose,
        channel=channel,
        status=status,
        source=source,
        lawful_basis=lawful_basis,
        captured_at=captured_at,
    )
    record = ConsentRecord.objects.create(
        profile=profile,
        purpose=purpose_obj,
        channel=channel_obj,
        status=status,
        lawful_basis=lawful_basis,
        source=source,
        captured_at=captured_at or timezone.now(),
        evidence=evidence or {},
        source_record_id=source_record_id,
        origin_profile_id=profile.pk,
        recorded_by=recorded_by if getattr(recorded_by, "pk", None) else None,
    )
    audit_record(
        actor=recorded_by,
        action="consent.record",
        target=f"profile:{profile.pk}",
        details={"record": record.pk, "purpose": purpose, "channel": channel, "status": status},
    )
    return record


@dataclass(frozen=True)
class _Decision:
    purpose: str
    channel: str
    status: str
    explicit_at: datetime | None
    field: str
    value: object


def decisions_from_attributes(attributes: dict) -> list[_Decision]:
    """Consent decisions a source record's canonical attributes state (pure)."""
    opt_in_at = parse_consent_time(attributes.get("email_opt_in_at"))
    opt_out_at = parse_consent_time(attributes.get("email_opt_out_at"))
    email: list[_Decision] = []
    # The row's own times say first which Mailchimp file it is from; a file-level status (the
    # Mailchimp preset sets one per file) only speaks for rows without any.
    status = ""
    field = "mailchimp_file"
    if attributes.get("email_cleaned_at"):
        status = "cleaned"
    elif opt_out_at is not None:
        status = "unsubscribed"
    elif opt_in_at is not None and "accepts_email_marketing" not in attributes:
        status = "subscribed"
    elif attributes.get("email_subscription_status"):
        status = str(attributes["email_subscription_status"]).strip().lower()
        field = "email_subscription_status"
    if status == "subscribed":
        email.append(
            _Decision(EMAIL_MARKETING, "email", ConsentStatus.GRANTED, opt_in_at, field, status)
        )
    elif status == "unsubscribed":
        email.append(
            _Decision(EMAIL_MARKETING, "email", ConsentStatus.WITHDRAWN, opt_out_at, field, status)
        )
    # "cleaned" is undeliverable, not a consent decision: nothing is recorded for it.
    accepts = attributes.get("accepts_email_marketing")
    if accepts is True:
        email.append(
            _Decision(
                EMAIL_MARKETING,
                "email",
                ConsentStatus.GRANTED,
                opt_in_at,
                "accepts_email_marketing",
                True,
            )
        )
    elif accepts is False:
        email.append(
            _Decision(
                EMAIL_MARKETING,
                "email",
                ConsentStatus.DENIED,
                opt_out_at,
                "accepts_email_marketing",
                False,
            )
        )
    if attributes.get("email_opt_out") is True:
        email.append(
            _Decision(
                EMAIL_MARKETING, "email", ConsentStatus.WITHDRAWN, opt_out_at, "email_opt_out", True
            )
        )
    decisions = []
    if email:
        # One decision per purpose and record: any opt-out in the record outweighs an opt-in.
        restrictive = [d for d in email if d.status in RESTRICTIVE_STATUSES]
        decisions.append(restrictive[0] if restrictive else email[0])
    sms = attributes.get("accepts_sms_marketing")
    if sms is True:
        decisions.append(
            _Decision(
                SMS_MARKETING, "sms", ConsentStatus.GRANTED, None, "accepts_sms_marketing", True
            )
        )
    elif sms is False:
        decisions.append(
            _Decision(
                SMS_MARKETING, "sms", ConsentStatus.DENIED, None, "accepts_sms_marketing", False
            )
        )
    return decisions


# The attributes decisions_from_attributes reads: its result depends on nothing else (and the
# clock, for consent times in the future).
CONSENT_ATTRIBUTES = (
    "email_opt_in_at",
    "email_opt_out_at",
    "email_cleaned_at",
    "accepts_email_marketing",
    "email_subscription_status",
    "email_opt_out",
    "accepts_sms_marketing",
)
_ABSENT = object()


class _DecisionMemo:
    """``decisions_from_attributes`` remembered per distinct consent attributes, for one batch.

    An import batch holds thousands of records and a handful of distinct combinations of
    consent values. Values are told apart by type too (True is not 1 here).
    """

    def __init__(self) -> None:
        self.known: dict[tuple, list[_Decision]] = {}

    def __call__(self, attributes: dict) -> list[_Decision]:
        values = [attributes.get(name, _ABSENT) for name in CONSENT_ATTRIBUTES]
        key = tuple((value, type(value)) for value in values)
        try:
            return self.known[key]
        except KeyError:
            decisions = self.known[key] = decisions_from_attributes(attributes)
            return decisions
        except TypeError:  # an unhashable value (a list from an API client): not remembered
            return decisions_from_attributes(attributes)


_IMPORT_FIELDS = (
    "profile",
    "purpose",
    "channel",
    "status",
    "lawful_basis",
    "source",
    "captured_at",
    "evidence",
    "conflict",
    "source_record",
    "origin_profile_id",
    "created_at",
)


def consent_from_source_records(
    *, source_record_ids: list[int], import_run_id: int | None = None
) -> dict[str, int]:
    """Derive consent from a batch of source records (set-based: three queries and one insert).

    Called once per import batch after resolution. Returns counts: recorded, unchanged,
    opt_out_kept (opt-ins without a newer explicit time that met an earlier opt-out).
    """
    from cdp.bulk import rows_append
    from profiles.models import SourceRecord

    counts = {"recorded": 0, "unchanged": 0, "opt_out_kept": 0}
    if not source_record_ids:
        return counts
    rows = list(
        SourceRecord.objects.filter(pk__among=source_record_ids, profile__isnull=False).values_list(
            "id", "profile_id", "source_id", "attributes"
        )
    )
    decide = _DecisionMemo()
    planned = [(sr, pid, src, decide(attrs or {})) for sr, pid, src, attrs in rows]
    planned = [p for p in planned if p[3]]
    if not planned:
        return counts
    purposes, channels = _purpose_ids(), _channel_ids()
    all_id = channels.get(Channel.ALL)
    profile_ids = sorted({pid for _, pid, _, _ in planned})
    states = current_states(
        profile_ids=profile_ids,
        purpose_ids=[purposes[k] for k in (EMAIL_MARKETING, SMS_MARKETING) if k in purposes],
    )
    seen = set(
        ConsentRecord.objects.filter(
            source_record_id__among=[sr for sr, _, _, _ in planned], source=ConsentSource.IMPORT
        ).values_list("source_record_id", "purpose_id", "status", "captured_at")
    )
    now = timezone.now()
    new: list[tuple] = []  # rows in _IMPORT_FIELDS order
    for sr_id, profile_id, source_id, decisions in sorted(planned):
        for decision in decisions:
            purpose_id = purposes.get(decision.purpose)
            channel_id = channels.get(decision.channel)
            if purpose_id is None or channel_id is None:
                continue
            current = effective_state(states[profile_id], purpose_id, channel_id, all_id)
            captured = decision.explicit_at or now
            if (sr_id, purpose_id, decision.status, captured) in seen:
                counts["unchanged"] += 1
                continue
            if decision.status == ConsentStatus.GRANTED:
                if current and current.status in RESTRICTIVE_STATUSES:
                    if decision.explicit_at is None or decision.explicit_at <= current.captured_at:
                        counts["opt_out_kept"] += 1
                        continue
                elif current and current.status == ConsentStatus.GRANTED:
                    counts["unchanged"] += 1
                    continue
            elif (
                current
                and current.status in RESTRICTIVE_STATUSES
                and (decision.explicit_at is None or decision.explicit_at <= current.captured_at)
            ):
                counts["unchanged"] += 1
                continue
            evidence = {
                "import_run": import_run_id,
                "data_source": source_id,
                "field": decision.field,
                "value": decision.value,
                "explicit_time": decision.explicit_at is not None,
            }
            new.append(
                (
                    profile_id,
                    purpose_id,
                    channel_id,
                    decision.status,
                    LawfulBasis.CONSENT,
                    ConsentSource.IMPORT,
                    captured,
                    evidence,
                    False,
                    sr_id,
                    profile_id,
                    now,
                )
            )
            seen.add((sr_id, purpose_id, decision.status, captured))
            state = _State(decision.status, captured, None)
            existing = states[profile_id].get((purpose_id, channel_id))
            if existing is None or (captured, 1) >= (existing.captured_at, 0):
                states[profile_id][(purpose_id, channel_id)] = state
    # Plain rows (COPY on PostgreSQL): an import batch writes thousands of decisions.
    rows_append(ConsentRecord, _IMPORT_FIELDS, new)
    counts["recorded"] = len(new)
    return counts


def consent_gpc_record(*, profile_ids: list[int], evidence: dict | None = None) -> dict[str, int]:
    """A Global Privacy Control signal: opt each profile out of sale/sharing (all channels).

    Nothing is written when the person is already opted out; an opt-out that overrides an
    earlier opt-in is recorded with ``conflict`` set and the record it contradicts.
    """
    counts = {"recorded": 0, "conflicts": 0, "unchanged": 0}
    profile_ids = sorted({p for p in profile_ids if p})
    purposes = list(Purpose.objects.filter(is_sale_or_sharing=True).values_list("id", flat=True))
    all_channel = Channel.objects.filter(key=Channel.ALL).values_list("id", flat=True).first()
    if not profile_ids or not purposes or all_channel is None:
        return counts
    states = current_states(profile_ids=profile_ids, purpose_ids=purposes)
    now = timezone.now()
    new = []
    for profile_id in profile_ids:
        for purpose_id in purposes:
            mine = [s for (p, _c), s in states[profile_id].items() if p == purpose_id]
            newest = max(mine, key=lambda s: (s.captured_at, s.record_id or 0)) if mine else None
            if newest and newest.status in RESTRICTIVE_STATUSES:
                counts["unchanged"] += 1
                continue
            conflict = newest is not None and newest.status == ConsentStatus.GRANTED
            details = dict(evidence or {}, signal="Sec-GPC: 1")
            if conflict:
                details["conflicts_with_record"] = newest.record_id
                counts["conflicts"] += 1
            new.append(
                ConsentRecord(
                    profile_id=profile_id,
                    purpose_id=purpose_id,
                    channel_id=all_channel,
                    status=ConsentStatus.DENIED,
                    lawful_basis=LawfulBasis.CONSENT,
                    source=ConsentSource.GPC,
                    captured_at=now,
                    evidence=details,
                    conflict=conflict,
                    origin_profile_id=profile_id,
                    created_at=now,
                )
            )
    ConsentRecord.objects.bulk_create(new)
    counts["recorded"] = len(new)
    for record in new:
        if record.conflict:
            audit_record(
                actor=None,
                action="consent.gpc_conflict",
                target=f"profile:{record.profile_id}",
                details={
                    "record": record.pk,
                    "conflicts_with": record.evidence.get("conflicts_with_record"),
                },
            )
    return counts


def consent_profiles_merge(survivor_id: int, other_ids: list[int]) -> dict:
    """Merge participant (profiles.services.merging): runs inside the merge, before rows move.

    Moves the absorbed profiles' consent to the survivor (both histories kept). Where any side is
    opted out and the merged newest decision would be an opt-in, a MERGE record re-states the
    opt-out (the most restrictive state wins). A restriction of any side carries over. Returns
    what the unmerge needs: which records each absorbed profile had and the MERGE records.
    """
    involved = [survivor_id, *other_ids]
    states = current_states(profile_ids=involved)
    all_id = _channel_ids().get(Channel.ALL)
    pairs = sorted({key for pid in involved for key in states[pid]})
    now = timezone.now()
    new = []
    for purpose_id, channel_id in pairs:
        sides = [effective_state(states[pid], purpose_id, channel_id, all_id) for pid in involved]
        sides = [s for s in sides if s]
        restrictive = [s for s in sides if s.status in RESTRICTIVE_STATUSES]
        newest = max(sides, key=lambda s: (s.captured_at, s.record_id or 0))
        if restrictive and newest.status == ConsentStatus.GRANTED:
            keep = max(restrictive, key=lambda s: (s.captured_at, s.record_id or 0))
            new.append(
                ConsentRecord(
                    profile_id=survivor_id,
                    purpose_id=purpose_id,
                    channel_id=channel_id,
                    status=keep.status,
                    lawful_basis=LawfulBasis.CONSENT,
                    source=ConsentSource.MERGE,
                    captured_at=now,
                    evidence={"kept_record": keep.record_id, "profiles": involved},
                    origin_profile_id=survivor_id,
                    created_at=now,
                )
            )
    owned: dict[str, list[int]] = defaultdict(list)
    for record_id, profile_id in ConsentRecord.objects.filter(profile_id__in=other_ids).values_list(
        "id", "profile_id"
    ):
        owned[str(profile_id)].append(record_id)
    ConsentRecord.objects.filter(profile_id__in=other_ids).update(profile_id=survivor_id)
    ConsentRecord.objects.bulk_create(new)
    restricted = list(
        Restriction.objects.filter(profile_id__in=other_ids).values_list("profile_id", flat=True)
    )
    if restricted and not Restriction.objects.filter(profile_id=survivor_id).exists():
        moved = Restriction.objects.filter(profile_id__in=other_ids).order_by("id").first()
        Restriction.objects.filter(pk=moved.pk).update(profile_id=survivor_id)
    return {"records": dict(owned), "merge_records": [r.pk for r in new], "restricted": restricted}


def consent_profiles_unmerge(data: dict, survivor_id: int, restored_ids: list[int]) -> int:
    """Merge participant: give profiles split off a survivor their own consent back.

    Runs inside the unmerge, after the absorbed profiles exist again with their source records.
    Each record goes back to the profile it was on before the merge; a record captured later
    follows its source record; the MERGE records of that merge are removed, so each side's
    state is its own again. A restricted survivor leaves each restored profile restricted too.
    Returns the number of records moved.
    """
    data = data or {}
    moved = 0
    for profile_id in restored_ids:
        ids = (data.get("records") or {}).get(str(profile_id), [])
        moved += (
            ConsentRecord.objects.filter(profile_id=survivor_id)
            .filter(Q(pk__in=ids) | Q(source_record__profile_id=profile_id))
            .update(profile_id=profile_id)
        )
    removed = 0
    if data.get("merge_records"):
        removed, _ = ConsentRecord.objects.filter(
            pk__in=data["merge_records"], source=ConsentSource.MERGE
        ).delete()
    restriction = Restriction.objects.filter(profile_id=survivor_id).first()
    if restriction is not None:
        Restriction.objects.bulk_create(
            [
                Restriction(profile_id=pid, request_id=restriction.request_id)
                for pid in restored_ids
            ],
            ignore_conflicts=True,
        )
    audit_record(
        actor=None,
        action="consent.unmerge_restore",
        target=f"profile:{survivor_id}",
        details={
            "restored": sorted(restored_ids),
            "moved": moved,
            "merge_records_removed": removed,
        },
    )
    return moved


CONSENT_API_SOURCE = "Consent API"


def consent_subject_ensure(*, id_type: str, value: str):
    """The profile of a person named by e-mail or user id; created through the normal pipeline
    (a source record of the 'Consent API' source, then resolution) when nobody has it yet.

    Returns None when the identifier is on the suppression list (an erased person): the call is
    dropped and counted, nobody is created.
    """
    from cdp.normalize import identifier_key
    from consent.services.suppression import suppression_check
    from profiles.models import DataSource, SourceRecord
    from profiles.selectors import profile_lookup
    from profiles.services.mapping import MappedIdentity, MappedRecord
    from profiles.services.records import source_records_upsert
    from profiles.services.resolution import profiles_resolve

    result = identifier_key(id_type, value, region=None)  # InvalidValue propagates to caller
    if result.key is None:
        raise ConsentError(f"{id_type} {result.flag or 'cannot identify a person'}")
    if suppression_check(identities_by_item={0: [(id_type, result.key)]}):
        return None
    profile = profile_lookup(id_type=id_type, value=value)
    if profile is not None:
        return profile
    with transaction.atomic():
        source, _ = DataSource.objects.get_or_create(
            name=CONSENT_API_SOURCE, defaults={"kind": DataSource.Kind.API, "priority": 200}
        )
        attributes = {"email": result.key} if id_type == "email" else {"user_id": result.key}
        record = MappedRecord(
            external_key=f"{id_type}:{result.key}",
            attributes=attributes,
            identities=[MappedIdentity(id_type, str(value).strip(), result.key, result.flag)],
        )
        upsert = source_records_upsert(source=source, records=[record])
        profiles_resolve(source_record_ids=list(upsert.record_ids.values()))
        profile_id = SourceRecord.objects.get(pk=upsert.record_ids[record.external_key]).profile_id
    from profiles.models import Profile

    return Profile.objects.get(pk=profile_id)
