"""Merging profiles and undoing a merge exactly.

A merge keeps the oldest (lowest) id, moves source records, identities and events to it, records
a redirect for each absorbed id and a MergeLog whose snapshot lets ``profile_unmerge`` restore
both sides exactly: ids, fields, attributes with their sources, identities, source records,
events and redirects.

Other apps whose rows belong to a profile (consent records, ...) take part through
``merge_participant_register``: their ``on_merge`` runs inside the merge transaction *before*
rows are moved and returns JSON that is stored in the snapshot under their name; ``on_unmerge``
gets it back inside the unmerge transaction, after the absorbed profiles exist again (every
registered participant's ``on_unmerge`` runs; its data is None when it stored nothing).

Bulk merges on PostgreSQL (``profiles_merge_many``) are set-based: the cluster map
(loser_id, winner_id) is copied into a temporary table once per batch, and snapshots, merge
logs, audit rows, redirects and the moves of records, identities and events are a fixed number
of statements over it. A participant may give ``involved``: called with that table's name, it
returns the survivor ids of the clusters where it has rows, and ``on_merge`` runs only for
those (the others store nothing). Any other row pointing at an absorbed profile is cleared as
its foreign key says (SET_NULL in SQL; CASCADE/PROTECT through Django's collector, for just the
profiles that have such rows) before one DELETE removes the absorbed profiles.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import connection, models, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from cdp.audit import audit_record, audit_record_many
from cdp.bulk import bulk_copy_rows
from cdp.models import AuditEvent
from profiles.models import (
    DoNotMerge,
    Event,
    Identity,
    MergeLog,
    MergeSuggestion,
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

# Temporary table (per connection) of one batch's clusters: loser_id -> winner_id.
MAP_TABLE = "cdp_merge_map"
# Clusters per transaction on PostgreSQL: every statement is set-based, so bigger is cheaper.
PG_BATCH_CLUSTERS = 50_000

MERGE_LOG_COLUMNS = (
    "survivor", "merged_ids", "reason", "snapshot", "survivor_snapshot", "extensions",
    "created_by", "created_at",
)  # fmt: skip


class MergeError(Exception):
    """A merge or unmerge that cannot be done; the message is shown to the steward."""


@dataclass(frozen=True)
class MergeParticipant:
    """on_merge(survivor_id, other_ids) -> JSON; on_unmerge(data, survivor_id, restored_ids);
    involved(map_table) -> survivor ids of the clusters with rows of this participant."""

    on_merge: Callable[[int, list[int]], object]
    on_unmerge: Callable[[object, int, list[int]], None]
    involved: Callable[[str], Iterable[int]] | None = None


_PARTICIPANTS: dict[str, MergeParticipant] = {}


def merge_participant_register(
    name: str,
    *,
    on_merge: Callable[[int, list[int]], object],
    on_unmerge: Callable[[object, int, list[int]], None],
    involved: Callable[[str], Iterable[int]] | None = None,
) -> None:
    """Let another app move its profile rows on merge and restore them on unmerge.

    Call it from the app's ``AppConfig.ready()``. ``on_merge`` must snapshot what it needs,
    then move its rows from ``other_ids`` to ``survivor_id``; ``on_unmerge`` puts them back
    (with None as data when ``on_merge`` did not run for that merge). ``involved`` (optional,
    bulk merges on PostgreSQL) gets the name of a table of (loser_id, winner_id) and returns
    the winner ids whose cluster has rows of this app, in one query; without it ``on_merge``
    runs for every cluster.
    """
    _PARTICIPANTS[name] = MergeParticipant(
        on_merge=on_merge, on_unmerge=on_unmerge, involved=involved
    )


def _profile_state(profile: Profile) -> dict:
    state = {name: getattr(profile, name) for name in PROFILE_FIELDS}
    state["created_at"] = profile.created_at.isoformat()
    state["updated_at"] = profile.updated_at.isoformat()
    return state


def _ids(queryset) -> list[int]:
    return list(queryset.order_by("pk").values_list("pk", flat=True))


def _suggestions_close(absorbed_ids, *, now) -> None:
    """Pending suggestions naming an absorbed profile leave the review queue as closed: their
    profile is gone (accepting them could only fail) and a later run may suggest the pair of
    survivor and other side again, scored as they are now. Undoing the merge reopens them
    (``_suggestions_reopen``)."""
    pending = MergeSuggestion.objects.filter(status=MergeSuggestion.Status.PENDING)
    pending.filter(
        models.Q(left_id__among=absorbed_ids) | models.Q(right_id__among=absorbed_ids)
    ).update(status=MergeSuggestion.Status.CLOSED, reviewed_at=now)


def _suggestions_reopen(restored_ids: list[int]) -> None:
    """Suggestions a merge closed go back to the queue when it is undone: those naming a
    restored profile whose two sides exist again and are not kept apart."""
    from profiles.services.resolution import do_not_merge_pairs

    closed = list(
        MergeSuggestion.objects.filter(status=MergeSuggestion.Status.CLOSED).filter(
            models.Q(left_id__in=restored_ids) | models.Q(right_id__in=restored_ids)
        )
    )
    sides = {pid for s in closed for pid in (s.left_id, s.right_id)}
    live = set(Profile.objects.filter(pk__in=sides).values_list("pk", flat=True))
    apart = do_not_merge_pairs(sorted(sides)) if closed else set()
    # One per pair, the newest: a pair may have been closed twice (kept apart at an earlier
    # undo, lifted, suggested and closed again), and only one suggestion per pair may be pending.
    newest: dict[tuple[int, int], int] = {}
    for s in sorted(closed, key=lambda s: s.pk):
        pair = (min(s.left_id, s.right_id), max(s.left_id, s.right_id))
        if {s.left_id, s.right_id} <= live and pair not in apart:
            newest[pair] = s.pk
    reopen = list(newest.values())
    MergeSuggestion.objects.filter(pk__in=reopen).update(
        status=MergeSuggestion.Status.PENDING, reviewed_at=None, reviewed_by=None
    )


@transaction.atomic
def profiles_merge(
    *, survivor_id: int, other_ids: list[int], reason: str, actor=None, details: dict | None = None
) -> MergeLog:
    """Merge profiles into the survivor; snapshot both sides so it can be undone exactly."""
    other_ids = sorted(set(other_ids) - {survivor_id})
    if not other_ids:
        raise MergeError("Nothing to merge.")
    # All rows locked in one statement in id order, as the bulk paths lock theirs: two merges
    # sharing profiles wait for each other instead of deadlocking.
    locked = {
        p.pk: p
        for p in Profile.objects.select_for_update()
        .filter(pk__in=[survivor_id, *other_ids])
        .order_by("pk")
    }
    survivor = locked.get(survivor_id)
    others = [locked[pid] for pid in other_ids if pid in locked]
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
    _suggestions_close(other_ids, now=timezone.now())
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
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> MergeManyResult:
    """Merge many clusters of profiles at once (full resolution runs), set-based.

    Each cluster keeps its lowest id. The result is the same as ``profiles_merge`` per cluster
    (redirects, a MergeLog with the snapshot ``profile_unmerge`` needs, moved records,
    identities and events, survivorship, one audit row per merge), but written in batches of
    ``batch_size`` clusters (default 2,000; 50,000 on PostgreSQL, where a batch is set-based
    SQL over a temporary cluster map), each batch one transaction with a fixed number of
    queries (plus participants' ``on_merge`` for the clusters they are involved in). A
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
    merge_batch = _merge_batch_pg if connection.vendor == "postgresql" else _merge_batch
    if batch_size is None:
        batch_size = PG_BATCH_CLUSTERS if merge_batch is _merge_batch_pg else 2000
    for start in range(0, len(clusters), batch_size):
        merge_batch(clusters[start : start + batch_size], reason, actor, details or {}, result)
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
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {MAP_TABLE} "
            "(loser_id bigint PRIMARY KEY, winner_id bigint NOT NULL, extensions text)"
        )
        cursor.execute(f"DELETE FROM {MAP_TABLE}")
        cursor.executemany(
            f"INSERT INTO {MAP_TABLE} (loser_id, winner_id) VALUES (%s, %s)",
            list(survivor_of.items()),
        )
    participants = _participants_merge(live, MAP_TABLE)
    logs = []
    for cluster in live:
        survivor_id, other_ids = cluster[0], cluster[1:]
        extensions = participants.get(survivor_id, {})
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
    _suggestions_close(others, now=now)
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


# ------------------------------------------------------------------ PostgreSQL, set-based


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _state_sql(alias: str) -> str:
    """``_profile_state`` of a profile row as JSONB (timestamps as ISO text, UTC)."""
    parts = [f"'{name}', {alias}.{connection.ops.quote_name(name)}" for name in PROFILE_FIELDS]
    parts += [f"'created_at', {alias}.created_at", f"'updated_at', {alias}.updated_at"]
    return f"jsonb_build_object({', '.join(parts)})"


def profile_foreign_keys() -> list[tuple[type[models.Model], models.ForeignKey]]:
    """Every (model, foreign key) pointing at Profile, hidden ones (related_name="+") too."""
    return [
        (relation.related_model, relation.field)
        for relation in Profile._meta.get_fields(include_hidden=True)
        if relation.auto_created and not relation.concrete and relation.is_relation
    ]


def _participants_merge(clusters: list[list[int]], map_table: str | None) -> dict[int, dict]:
    """Run each participant's ``on_merge`` for the clusters it is involved in (all clusters
    when it gives no ``involved`` or there is no map table); survivor id -> extensions."""
    extensions: dict[int, dict] = defaultdict(dict)
    for name, participant in _PARTICIPANTS.items():
        survivors = None
        if participant.involved is not None and map_table is not None:
            survivors = set(participant.involved(map_table))
        for cluster in clusters:
            if survivors is None or cluster[0] in survivors:
                extensions[cluster[0]][name] = participant.on_merge(cluster[0], cluster[1:])
    return extensions


def merge_map_winners(map_table: str, model: type[models.Model], column: str = "profile") -> set:
    """Winner ids of the clusters in ``map_table`` where ``model`` has a row pointing at the
    winner or a loser (for a participant's ``involved``): one query, hash joins."""
    table = _table(model)
    column = connection.ops.quote_name(model._meta.get_field(column).column)
    with connection.cursor() as cursor:
        joined = f"SELECT m.winner_id FROM {map_table} m JOIN {table} t ON t.{column} = m."
        cursor.execute(f"{joined}loser_id UNION {joined}winner_id")
        return {row[0] for row in cursor.fetchall()}


def _map_fill(cursor, clusters: list[list[int]]) -> None:
    cursor.execute(f"TRUNCATE {MAP_TABLE}")
    with cursor.cursor.copy(f"COPY {MAP_TABLE} (loser_id, winner_id) FROM STDIN") as copy:
        for cluster in clusters:
            for other in cluster[1:]:
                copy.write_row((other, cluster[0]))
    cursor.execute(f"ANALYZE {MAP_TABLE}")


def _other_references_clear(cursor) -> list[int]:
    """Rows of other apps that still point at a loser: SET_NULL set-based; return the losers
    whose remaining rows need Django's collector (cascades, PROTECT)."""
    handled = {ProfileRedirect, SourceRecord, Identity, Event}
    collect: set[int] = set()
    for model, fk in profile_foreign_keys():
        on_delete = fk.remote_field.on_delete
        if model in handled or on_delete is models.DO_NOTHING:
            continue
        column = connection.ops.quote_name(fk.column)
        if on_delete is models.SET_NULL:
            cursor.execute(
                f"UPDATE {_table(model)} t SET {column} = NULL FROM {MAP_TABLE} m "
                f"WHERE t.{column} = m.loser_id"
            )
            continue
        cursor.execute(
            f"SELECT DISTINCT t.{column} FROM {_table(model)} t "
            f"JOIN {MAP_TABLE} m ON t.{column} = m.loser_id"
        )
        collect.update(row[0] for row in cursor.fetchall())
    return sorted(collect)


@transaction.atomic
def _merge_batch_pg(clusters, reason, actor, details, result: MergeManyResult) -> None:
    """One batch on PostgreSQL: a fixed number of set-based statements over a temp cluster map."""
    created_by_id = actor.pk if getattr(actor, "pk", None) else None
    now = timezone.now()
    profile = _table(Profile)
    with connection.cursor() as cursor:
        # Big set-based statements look costly to the planner; compiling them (JIT) costs
        # more than running them.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL work_mem = '256MB'")  # sorts and hashes stay in memory
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {MAP_TABLE} "
            "(loser_id bigint PRIMARY KEY, winner_id bigint NOT NULL, extensions jsonb)"
        )
        _map_fill(cursor, clusters)
        wanted = sum(len(c) for c in clusters)
        cursor.execute(
            f"WITH locked AS (SELECT id FROM {profile} WHERE id IN "
            f"(SELECT loser_id FROM {MAP_TABLE} UNION SELECT winner_id FROM {MAP_TABLE}) "
            "ORDER BY id FOR UPDATE) SELECT count(*) FROM locked"
        )
        if cursor.fetchone()[0] != wanted:
            cursor.execute(
                f"SELECT x FROM (SELECT loser_id x FROM {MAP_TABLE} UNION "
                f"SELECT winner_id FROM {MAP_TABLE}) ids WHERE NOT EXISTS "
                f"(SELECT 1 FROM {profile} p WHERE p.id = ids.x)"
            )
            gone = {row[0] for row in cursor.fetchall()}
            live = []
            for cluster in clusters:
                (result.skipped if gone.intersection(cluster) else live).append(cluster)
            clusters = live
            if not clusters:
                return
            _map_fill(cursor, clusters)
        # Other apps' rows, before anything moves: only clusters where they have rows.
        extensions = _participants_merge(clusters, MAP_TABLE)
        if extensions:
            survivor_ids = sorted(extensions)
            cursor.execute(
                f"UPDATE {MAP_TABLE} m SET extensions = x.data FROM "
                "unnest(%s::bigint[], %s::text[]::jsonb[]) AS x(winner_id, data) "
                f"WHERE m.winner_id = x.winner_id AND m.loser_id = "
                f"(SELECT min(loser_id) FROM {MAP_TABLE} f WHERE f.winner_id = x.winner_id)",
                [survivor_ids, [json.dumps(extensions[s]) for s in survivor_ids]],
            )
        # One statement moves the losers' records, identities, events and redirects to their
        # survivors and, from the ids those moves return, writes the merge logs (snapshots
        # built in SQL) and their audit rows.
        audit_details = json.dumps({"reason": reason, **details})
        moves = []
        for name, model, column in (
            ("sr", SourceRecord, "id"),
            ("idn", Identity, "id"),
            ("ev", Event, "id"),
            ("rd", ProfileRedirect, "old_id"),
        ):
            moves.append(
                f"moved_{name} AS (UPDATE {_table(model)} t SET profile_id = m.winner_id "
                f"FROM {MAP_TABLE} m WHERE t.profile_id = m.loser_id "
                f"RETURNING m.loser_id, t.{column} AS ref), "
                f"{name} AS (SELECT loser_id, jsonb_agg(ref ORDER BY ref) AS ids "
                f"FROM moved_{name} GROUP BY loser_id)"
            )
        cursor.execute(
            f"""
            WITH {", ".join(moves)},
            entries AS (
                SELECT m.winner_id, m.loser_id, m.extensions, jsonb_build_object(
                    'id', p.id, 'fields', {_state_sql("p")},
                    'source_record_ids', coalesce(sr.ids, '[]'::jsonb),
                    'identity_ids', coalesce(idn.ids, '[]'::jsonb),
                    'event_ids', coalesce(ev.ids, '[]'::jsonb),
                    'redirect_ids', coalesce(rd.ids, '[]'::jsonb)) AS entry
                FROM {MAP_TABLE} m JOIN {profile} p ON p.id = m.loser_id
                LEFT JOIN sr ON sr.loser_id = m.loser_id
                LEFT JOIN idn ON idn.loser_id = m.loser_id
                LEFT JOIN ev ON ev.loser_id = m.loser_id
                LEFT JOIN rd ON rd.loser_id = m.loser_id
            ),
            logs AS (
                INSERT INTO {_table(MergeLog)} (survivor_id, merged_ids, reason, snapshot,
                    survivor_snapshot, extensions, created_by_id, created_at)
                SELECT e.winner_id, jsonb_agg(e.loser_id ORDER BY e.loser_id), %s,
                    jsonb_agg(e.entry ORDER BY e.loser_id), {_state_sql("w")},
                    coalesce((array_agg(e.extensions) FILTER
                        (WHERE e.extensions IS NOT NULL))[1], '{{}}'::jsonb), %s, %s
                FROM entries e JOIN {profile} w ON w.id = e.winner_id
                GROUP BY e.winner_id, w.id
                RETURNING survivor_id, merged_ids
            )
            INSERT INTO {_table(AuditEvent)} (actor_id, action, target, details, created_at)
            SELECT %s, 'profile.merge', 'profile:' || survivor_id,
                jsonb_build_object('merged_ids', merged_ids) || %s::jsonb, %s FROM logs
            """,
            [reason, created_by_id, now, created_by_id, audit_details, now],
        )
        cursor.execute(
            f"INSERT INTO {_table(ProfileRedirect)} (old_id, profile_id, created_at) "
            f"SELECT loser_id, winner_id, %s FROM {MAP_TABLE}",
            [now],
        )
        collect = _other_references_clear(cursor)
        if collect:
            Profile.objects.filter(pk__in=collect).delete()
        cursor.execute(f"DELETE FROM {profile} p USING {MAP_TABLE} m WHERE p.id = m.loser_id")
        absorbed = sum(len(c) - 1 for c in clusters)
    _suggestions_close([other for cluster in clusters for other in cluster[1:]], now=now)
    from profiles.services.survivorship import profile_attributes_refresh

    profile_attributes_refresh(profile_ids=[c[0] for c in clusters])
    result.merges += len(clusters)
    result.absorbed += absorbed


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

    Records, identities and events that arrived after the merge stay with the survivor; an
    identity of a restored record goes back with it (re-imports give records new identities).
    The survivor's attributes, and those of a restored profile whose records were updated
    meanwhile, are derived again from the records each holds. Each restored id gets a
    do-not-merge pair with the survivor, so no later run merges them again.
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
        # A record re-imported after the merge got new identities on the survivor: they follow
        # their record back.
        Identity.objects.filter(source_record__profile_id=pid, profile_id=survivor_id).update(
            profile_id=pid
        )
        ProfileRedirect.objects.filter(old_id=pid).delete()
        ProfileRedirect.objects.filter(old_id__in=entry["redirect_ids"]).update(profile_id=pid)
        do_not_merge_store(a=survivor_id, b=pid, reason="unmerged", actor=actor)
    restored_ids = [p.pk for p in restored]
    # A suggestion accepted into this merge is now a rejected pair (do-not-merge is stored).
    MergeSuggestion.objects.filter(
        merge_log=merge_log, status=MergeSuggestion.Status.ACCEPTED
    ).update(
        status=MergeSuggestion.Status.REJECTED,
        reviewed_by=actor if getattr(actor, "pk", None) else None,
        reviewed_at=timezone.now(),
    )
    _suggestions_reopen(restored_ids)
    extensions = merge_log.extensions or {}
    for name, participant in _PARTICIPANTS.items():
        participant.on_unmerge(extensions.get(name), survivor_id, restored_ids)
    survivor_state = dict(merge_log.survivor_snapshot or {})
    if survivor_state:
        survivor_state.pop("created_at", None)
        survivor_state["updated_at"] = survivor_state.get("updated_at") or timezone.now()
        Profile.objects.filter(pk=survivor_id).update(**survivor_state)
    # Derived values follow the records each side holds now: the survivor's records may have
    # changed since (later imports, another undone merge), and a restored profile's own records
    # may have been updated while they were the survivor's.
    from profiles.services.survivorship import profile_attributes_refresh

    changed = SourceRecord.objects.filter(
        profile_id__in=restored_ids, updated_at__gt=merge_log.created_at
    ).values_list("profile_id", flat=True)
    profile_attributes_refresh(profile_ids=sorted({survivor_id, *changed}))
    audit_record(
        actor=actor,
        action="profile.unmerge",
        target=f"profile:{survivor_id}",
        details={"restored_ids": restored_ids, "merge_log": merge_log.pk},
    )
    return restored
