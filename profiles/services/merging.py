"""Merging profiles and undoing a merge exactly.

A merge keeps the oldest (lowest) id, moves source records, identities and events to it, records
a redirect for each absorbed id and a MergeLog whose snapshot lets ``profile_unmerge`` restore
both sides exactly: ids, fields, attributes with their sources, identities, source records,
events and redirects.

Other apps whose rows belong to a profile (consent records, ...) take part through
``merge_participant_register``: their ``on_merge`` runs inside the merge transaction *before*
rows are moved and returns JSON that is stored in the snapshot under their name; ``on_unmerge``
gets it back inside the unmerge transaction, after the absorbed profiles exist again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from cdp.audit import audit_record, audit_record_many
from cdp.bulk import bulk_copy_rows
from profiles.models import (
    DoNotMerge,
    Event,
    Identity,
    MergeLog,
    Profile,
    ProfileRedirect,
    SourceRecord,
)

PROFILE_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "city",
    "country",
    "attributes",
    "attribute_sources",
)

MERGE_LOG_COLUMNS = (
    "survivor", "merged_ids", "reason", "snapshot", "survivor_snapshot", "extensions",
    "created_by", "created_at",
)  # fmt: skip


class MergeError(Exception):
    """A merge or unmerge that cannot be done; the message is shown to the steward."""


@dataclass(frozen=True)
class MergeParticipant:
    """on_merge(survivor_id, other_ids) -> JSON; on_unmerge(data, survivor_id, restored_ids)."""

    on_merge: Callable[[int, list[int]], object]
    on_unmerge: Callable[[object, int, list[int]], None]


_PARTICIPANTS: dict[str, MergeParticipant] = {}


def merge_participant_register(
    name: str,
    *,
    on_merge: Callable[[int, list[int]], object],
    on_unmerge: Callable[[object, int, list[int]], None],
) -> None:
    """Let another app move its profile rows on merge and restore them on unmerge.

    Call it from the app's ``AppConfig.ready()``. ``on_merge`` must snapshot what it needs,
    then move its rows from ``other_ids`` to ``survivor_id``; ``on_unmerge`` puts them back.
    """
    _PARTICIPANTS[name] = MergeParticipant(on_merge=on_merge, on_unmerge=on_unmerge)


def _profile_state(profile: Profile) -> dict:
    state = {name: getattr(profile, name) for name in PROFILE_FIELDS}
    state["created_at"] = profile.created_at.isoformat()
    state["updated_at"] = profile.updated_at.isoformat()
    return state


def _ids(queryset) -> list[int]:
    return list(queryset.order_by("pk").values_list("pk", flat=True))


@transaction.atomic
def profiles_merge(
    *, survivor_id: int, other_ids: list[int], reason: str, actor=None, details: dict | None = None
) -> MergeLog:
    """Merge profiles into the survivor; snapshot both sides so it can be undone exactly."""
    other_ids = sorted(set(other_ids) - {survivor_id})
    if not other_ids:
        raise MergeError("Nothing to merge.")
    survivor = Profile.objects.select_for_update().filter(pk=survivor_id).first()
    others = list(Profile.objects.select_for_update().filter(pk__in=other_ids))
    if survivor is None or len(others) != len(other_ids):
        raise MergeError("One of these profiles no longer exists (merged meanwhile?).")
    snapshot = []
    for profile in others:
        snapshot.append(
            {
                "id": profile.pk,
                "fields": _profile_state(profile),
                "source_record_ids": _ids(SourceRecord.objects.filter(profile_id=profile.pk)),
                "identity_ids": _ids(Identity.objects.filter(profile_id=profile.pk)),
                "event_ids": _ids(Event.objects.filter(profile_id=profile.pk)),
                "redirect_ids": sorted(
                    ProfileRedirect.objects.filter(profile_id=profile.pk).values_list(
                        "old_id", flat=True
                    )
                ),
            }
        )
    extensions = {
        name: participant.on_merge(survivor_id, other_ids)
        for name, participant in _PARTICIPANTS.items()
    }
    SourceRecord.objects.filter(profile_id__in=other_ids).update(profile_id=survivor_id)
    Identity.objects.filter(profile_id__in=other_ids).update(profile_id=survivor_id)
    Event.objects.filter(profile_id__in=other_ids).update(profile_id=survivor_id)
    ProfileRedirect.objects.filter(profile_id__in=other_ids).update(profile_id=survivor_id)
    ProfileRedirect.objects.bulk_create(
        [ProfileRedirect(old_id=pid, profile_id=survivor_id) for pid in other_ids]
    )
    Profile.objects.filter(pk__in=other_ids).delete()
    log = MergeLog.objects.create(
        survivor_id=survivor_id,
        merged_ids=other_ids,
        reason=reason,
        snapshot=snapshot,
        survivor_snapshot=_profile_state(survivor),
        extensions=extensions,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    from profiles.services.survivorship import profile_attributes_refresh

    profile_attributes_refresh(profile_ids=[survivor_id])
    audit_record(
        actor=actor,
        action="profile.merge",
        target=f"profile:{survivor_id}",
        details={"merged_ids": other_ids, "reason": reason, **(details or {})},
    )
    return log


@dataclass
class MergeManyResult:
    """What ``profiles_merge_many`` did: clusters merged, profiles absorbed, clusters skipped."""

    merges: int = 0
    absorbed: int = 0
    skipped: list[list[int]] = field(default_factory=list)


def _grouped_ids(queryset, group: str, value: str = "pk") -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    for key, pk in queryset.order_by(value).values_list(group, value):
        out[key].append(pk)
    return out


def profiles_merge_many(
    *,
    clusters: list[list[int]],
    reason: str,
    actor=None,
    details: dict | None = None,
    batch_size: int = 2000,
    progress: Callable[[int, int], None] | None = None,
) -> MergeManyResult:
    """Merge many clusters of profiles at once (full resolution runs), set-based.

    Each cluster keeps its lowest id. The result is the same as ``profiles_merge`` per cluster
    (redirects, a MergeLog with the snapshot ``profile_unmerge`` needs, moved records,
    identities and events, survivorship, one audit row per merge), but written in batches of
    ``batch_size`` clusters, each batch one transaction with a fixed number of queries. A
    cluster one of whose profiles no longer exists (merged meanwhile), or that overlaps an
    earlier cluster, is skipped and returned.
    """
    result = MergeManyResult()
    taken: set[int] = set()
    disjoint = []
    for cluster in (sorted(set(c)) for c in clusters if len(set(c)) > 1):
        # A profile belongs to one cluster: a later cluster that overlaps is skipped.
        (result.skipped if taken.intersection(cluster) else disjoint).append(cluster)
        taken.update(cluster)
    clusters = disjoint
    for start in range(0, len(clusters), batch_size):
        _merge_batch(clusters[start : start + batch_size], reason, actor, details or {}, result)
        if progress is not None:
            progress(min(start + batch_size, len(clusters)), len(clusters))
    return result


@transaction.atomic
def _merge_batch(clusters, reason, actor, details, result: MergeManyResult) -> None:
    wanted = [pid for c in clusters for pid in c]
    states = {
        row["id"]: row
        for row in Profile.objects.select_for_update()
        .filter(pk__in=wanted)
        .order_by("pk")
        .values("id", *PROFILE_FIELDS, "created_at", "updated_at")
    }
    live = []
    for cluster in clusters:
        (live if all(pid in states for pid in cluster) else result.skipped).append(cluster)
    if not live:
        return
    survivor_of = {other: c[0] for c in live for other in c[1:]}
    others = sorted(survivor_of)
    records = _grouped_ids(SourceRecord.objects.filter(profile_id__in=others), "profile_id")
    identities = _grouped_ids(Identity.objects.filter(profile_id__in=others), "profile_id")
    events = _grouped_ids(Event.objects.filter(profile_id__in=others), "profile_id")
    redirects = _grouped_ids(
        ProfileRedirect.objects.filter(profile_id__in=others), "profile_id", "old_id"
    )

    def state(pid: int) -> dict:
        row = states[pid]
        out = {name: row[name] for name in PROFILE_FIELDS}
        out["created_at"] = row["created_at"].isoformat()
        out["updated_at"] = row["updated_at"].isoformat()
        return out

    now = timezone.now()
    created_by_id = actor.pk if getattr(actor, "pk", None) else None
    logs = []
    for cluster in live:
        survivor_id, other_ids = cluster[0], cluster[1:]
        extensions = {
            name: participant.on_merge(survivor_id, other_ids)
            for name, participant in _PARTICIPANTS.items()
        }
        snapshot = [
            {
                "id": pid,
                "fields": state(pid),
                "source_record_ids": records.get(pid, []),
                "identity_ids": identities.get(pid, []),
                "event_ids": events.get(pid, []),
                "redirect_ids": sorted(redirects.get(pid, [])),
            }
            for pid in other_ids
        ]
        logs.append(
            (
                survivor_id,
                other_ids,
                reason,
                snapshot,
                state(survivor_id),
                extensions,
                created_by_id,
                now,
            )
        )
    # New redirects first: every move below reads its target from the redirect table.
    bulk_copy_rows(
        ProfileRedirect,
        ("old_id", "profile", "created_at"),
        [(o, s, now) for o, s in survivor_of.items()],
    )
    target = Subquery(
        ProfileRedirect.objects.filter(old_id=OuterRef("profile_id")).values("profile_id")[:1]
    )
    SourceRecord.objects.filter(profile_id__in=others).update(profile_id=target)
    Identity.objects.filter(profile_id__in=others).update(profile_id=target)
    Event.objects.filter(profile_id__in=others).update(profile_id=target)
    ProfileRedirect.objects.filter(profile_id__in=others).update(profile_id=target)
    Profile.objects.filter(pk__in=others).delete()
    bulk_copy_rows(MergeLog, MERGE_LOG_COLUMNS, logs)
    from profiles.services.survivorship import profile_attributes_refresh

    profile_attributes_refresh(profile_ids=[c[0] for c in live])
    audit_record_many(
        actor=actor,
        action="profile.merge",
        entries=[
            (f"profile:{c[0]}", {"merged_ids": c[1:], "reason": reason, **details}) for c in live
        ],
    )
    result.merges += len(live)
    result.absorbed += len(others)


def do_not_merge_store(*, a: int, b: int, reason: str, actor=None) -> None:
    """Remember that two profile ids are different people (idempotent)."""
    left, right = min(a, b), max(a, b)
    if left == right:
        return
    DoNotMerge.objects.get_or_create(
        left_id=left,
        right_id=right,
        defaults={"reason": reason, "created_by": actor if getattr(actor, "pk", None) else None},
    )


@transaction.atomic
def profile_unmerge(*, merge_log: MergeLog, actor=None) -> list[Profile]:
    """Undo a merge: recreate each absorbed profile with its id and exactly what it had.

    Records, identities and events that arrived after the merge stay with the survivor. Each
    restored id gets a do-not-merge pair with the survivor, so no later run merges them again.
    """
    updated = MergeLog.objects.filter(pk=merge_log.pk, unmerged_at__isnull=True).update(
        unmerged_at=timezone.now(), unmerged_by=actor if getattr(actor, "pk", None) else None
    )
    if not updated:
        raise MergeError("This merge has already been undone.")
    survivor_id = merge_log.survivor_id
    if survivor_id is None or not Profile.objects.filter(pk=survivor_id).exists():
        raise MergeError("The surviving profile no longer exists; undo the later merge first.")
    restored = []
    for entry in merge_log.snapshot:
        fields = dict(entry["fields"])
        created_at = fields.pop("created_at")
        updated_at = fields.pop("updated_at", created_at)
        profile = Profile(pk=entry["id"], created_at=created_at, updated_at=updated_at, **fields)
        restored.append(profile)
    Profile.objects.bulk_create(restored)
    for entry in merge_log.snapshot:
        pid = entry["id"]
        SourceRecord.objects.filter(
            pk__in=entry["source_record_ids"], profile_id=survivor_id
        ).update(profile_id=pid)
        Identity.objects.filter(pk__in=entry["identity_ids"], profile_id=survivor_id).update(
            profile_id=pid
        )
        Event.objects.filter(pk__in=entry.get("event_ids", []), profile_id=survivor_id).update(
            profile_id=pid
        )
        ProfileRedirect.objects.filter(old_id=pid).delete()
        ProfileRedirect.objects.filter(old_id__in=entry["redirect_ids"]).update(profile_id=pid)
        do_not_merge_store(a=survivor_id, b=pid, reason="unmerged", actor=actor)
    restored_ids = [p.pk for p in restored]
    for name, data in (merge_log.extensions or {}).items():
        participant = _PARTICIPANTS.get(name)
        if participant is not None:
            participant.on_unmerge(data, survivor_id, restored_ids)
    survivor_state = dict(merge_log.survivor_snapshot or {})
    if survivor_state:
        survivor_state.pop("created_at", None)
        survivor_state["updated_at"] = survivor_state.get("updated_at") or timezone.now()
        Profile.objects.filter(pk=survivor_id).update(**survivor_state)
    audit_record(
        actor=actor,
        action="profile.unmerge",
        target=f"profile:{survivor_id}",
        details={"restored_ids": restored_ids, "merge_log": merge_log.pk},
    )
    return restored
