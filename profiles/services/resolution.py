"""Exact identity resolution: source records that share a normalised identity are one profile.

Runs on every import batch and API message for the records that changed. The invariant it keeps:
no two profiles share an identity key, so one hop from the changed records finds every profile
they touch. A merge keeps the oldest (lowest) id, records a redirect for the others and a
snapshot in MergeLog so it can be undone.
"""

from __future__ import annotations

from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from cdp.audit import audit_record
from profiles.models import (
    Event,
    Identity,
    MergeLog,
    Profile,
    ProfileRedirect,
    SourceRecord,
)
from profiles.services.records import profile_links_sync
from profiles.services.survivorship import profile_attributes_refresh


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(self, node: tuple[str, int]) -> tuple[str, int]:
        self.parent.setdefault(node, node)
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: tuple[str, int], b: tuple[str, int]) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


@transaction.atomic
def profiles_resolve(*, source_record_ids: list[int]) -> dict[str, int]:
    """Give each of these source records its profile; merge profiles they prove are one person.

    Returns counts: profiles created, records assigned, profiles merged away.
    """
    ids = list(dict.fromkeys(source_record_ids))
    if not ids:
        return {"created": 0, "assigned": 0, "merged": 0}
    uf = _UnionFind()
    current: dict[int, int | None] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        current.update(SourceRecord.objects.filter(pk__in=chunk).values_list("id", "profile_id"))
    for sr_id, profile_id in current.items():
        uf.find(("r", sr_id))
        if profile_id:
            uf.union(("r", sr_id), ("p", profile_id))

    own_keys: dict[str, set[str]] = defaultdict(set)  # key -> types, among the changed records
    by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
    for start in range(0, len(ids), 5000):
        rows = Identity.objects.filter(
            source_record_id__in=ids[start : start + 5000], key__isnull=False
        ).values_list("source_record_id", "type", "key")
        for sr_id, id_type, key in rows:
            own_keys[key].add(id_type)
            by_key[(id_type, key)].append(sr_id)
    for members in by_key.values():
        for other in members[1:]:
            uf.union(("r", members[0]), ("r", other))

    key_list = list(own_keys)
    for start in range(0, len(key_list), 2000):
        rows = Identity.objects.filter(
            key__in=key_list[start : start + 2000], profile__isnull=False
        ).values_list("type", "key", "profile_id")
        for id_type, key, profile_id in rows:
            if id_type in own_keys[key]:
                uf.union(("r", by_key[(id_type, key)][0]), ("p", profile_id))

    components: dict[tuple[str, int], dict[str, set[int]]] = defaultdict(
        lambda: {"r": set(), "p": set()}
    )
    for sr_id in current:
        components[uf.find(("r", sr_id))]["r"].add(sr_id)
    for node in list(uf.parent):
        if node[0] == "p":
            components[uf.find(node)]["p"].add(node[1])

    now = timezone.now()
    new_profiles: list[tuple[Profile, set[int]]] = []
    assignment: dict[int, int] = {}
    merged = 0
    for component in components.values():
        records, profile_ids = component["r"], component["p"]
        if not profile_ids:
            new_profiles.append((Profile(created_at=now, updated_at=now), records))
            continue
        survivor_id = min(profile_ids)
        if len(profile_ids) > 1:
            others = sorted(profile_ids - {survivor_id})
            profiles_merge(survivor_id=survivor_id, other_ids=others, reason="shared identifier")
            merged += len(others)
        for sr_id in records:
            if current[sr_id] != survivor_id:
                assignment[sr_id] = survivor_id
    Profile.objects.bulk_create([p for p, _ in new_profiles], batch_size=1000)
    for profile, records in new_profiles:
        for sr_id in records:
            assignment[sr_id] = profile.pk

    by_profile: dict[int, list[int]] = defaultdict(list)
    for sr_id, profile_id in assignment.items():
        by_profile[profile_id].append(sr_id)
    changed = [SourceRecord(pk=sr_id, profile_id=p) for sr_id, p in assignment.items()]
    SourceRecord.objects.bulk_update(changed, ["profile_id"], batch_size=500)
    profile_links_sync(source_record_ids=ids)
    touched = {assignment.get(sr_id) or current[sr_id] for sr_id in ids}
    profile_attributes_refresh(profile_ids=[p for p in touched if p])
    return {"created": len(new_profiles), "assigned": len(assignment), "merged": merged}


@transaction.atomic
def profiles_merge(*, survivor_id: int, other_ids: list[int], reason: str) -> MergeLog:
    """Merge profiles into the survivor; snapshot each absorbed profile so it can be undone."""
    snapshot = []
    for profile in Profile.objects.filter(pk__in=other_ids):
        snapshot.append(
            {
                "id": profile.pk,
                "fields": {
                    "first_name": profile.first_name,
                    "last_name": profile.last_name,
                    "email": profile.email,
                    "phone": profile.phone,
                    "city": profile.city,
                    "country": profile.country,
                    "attributes": profile.attributes,
                    "attribute_sources": profile.attribute_sources,
                    "created_at": profile.created_at.isoformat(),
                },
                "source_record_ids": list(
                    SourceRecord.objects.filter(profile_id=profile.pk).values_list("id", flat=True)
                ),
                "redirect_ids": list(
                    ProfileRedirect.objects.filter(profile_id=profile.pk).values_list(
                        "old_id", flat=True
                    )
                ),
            }
        )
    # Memberships first: they protect the absorbed profiles from the delete below.
    from profiles.services.loyalty import loyalty_profiles_merged

    loyalty_profiles_merged(survivor_id=survivor_id, other_ids=other_ids)
    SourceRecord.objects.filter(profile_id__in=other_ids).update(profile_id=survivor_id)
    Identity.objects.filter(profile_id__in=other_ids).update(profile_id=survivor_id)
    Event.objects.filter(profile_id__in=other_ids).update(profile_id=survivor_id)
    ProfileRedirect.objects.filter(profile_id__in=other_ids).update(profile_id=survivor_id)
    ProfileRedirect.objects.bulk_create(
        [ProfileRedirect(old_id=pid, profile_id=survivor_id) for pid in other_ids]
    )
    Profile.objects.filter(pk__in=other_ids).delete()
    log = MergeLog.objects.create(
        survivor_id=survivor_id, merged_ids=other_ids, reason=reason, snapshot=snapshot
    )
    audit_record(
        actor=None,
        action="profile.merge",
        target=f"profile:{survivor_id}",
        details={"merged_ids": other_ids, "reason": reason},
    )
    return log


def profile_resolve_id(profile_id: int) -> Profile | None:
    """The live profile for an id, following a merge redirect."""
    profile = Profile.objects.filter(pk=profile_id).first()
    if profile is not None:
        return profile
    redirect = ProfileRedirect.objects.select_related("profile").filter(old_id=profile_id).first()
    return redirect.profile if redirect else None
