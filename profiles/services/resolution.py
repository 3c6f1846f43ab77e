"""Identity resolution: exact links at once, fuzzy matching in full runs, suggestions.

Exact resolution runs on every import batch and API message for the records that changed:
records sharing a normalised identity are one person, subject to guards (placeholders have no
key; role mailboxes and identifier values shared by more records than the ruleset's cap never
link; a conflicting user id or birth date blocks the link). A new record that matches two
existing profiles joins the better one (by match score) and the two profiles become a
MergeSuggestion; existing profiles are never merged by a bridging record.

Full runs (``resolution_run_execute``, a django-q2 job) score fuzzy candidates found by blocking
(profiles/matching.py), merge above the ruleset's upper threshold and suggest in the review band;
do-not-merge pairs are honoured. A dry run reports what a ruleset would do without writing.
"""

from __future__ import annotations

import functools
import json
import time
from collections import defaultdict

from django.db import connection, transaction
from django.db.models import BigIntegerField, Count, F, OuterRef, Q, Subquery
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce
from django.utils import timezone

from cdp.audit import audit_record
from cdp.bulk import rows_insert_returning_ids
from cdp.jobs import job_enqueue
from cdp.normalize import IdentifierTypes, is_role_mailbox
from profiles import matching
from profiles.models import (
    DoNotMerge,
    Identity,
    MatchCriterion,
    MergeLog,
    MergeSuggestion,
    Profile,
    ProfileRedirect,
    ResolutionRun,
    Ruleset,
    SourceRecord,
)
from profiles.services.merging import profiles_merge, profiles_merge_many
from profiles.services.records import profile_ids_set, profile_links_set
from profiles.services.survivorship import (
    PROFILE_COLUMNS,
    profile_attributes_refresh,
    profile_column_values,
    single_record_values,
)

__all__ = ["profiles_merge", "profiles_resolve", "profile_resolve_id", "resolution_run_create"]

MATCH_ID_TYPES = (
    IdentifierTypes.EMAIL,
    IdentifierTypes.PHONE,
    IdentifierTypes.USER_ID,
    IdentifierTypes.CUSTOMER_ID,
)
MATCH_ATTRIBUTES = (
    "first_name", "last_name", "birth_date", "street", "street2", "postcode", "city", "state",
)  # fmt: skip


# ------------------------------------------------------------------ rulesets


def ruleset_active() -> Ruleset | None:
    return Ruleset.objects.filter(is_active=True).first()


def ruleset_spec(ruleset: Ruleset | None) -> matching.Spec:
    """The ruleset as plain values for the pure matching functions (defaults without one)."""
    if ruleset is None:
        return matching.DEFAULT_SPEC
    # One query: the enabled rules' criteria in rule order (a rule without criteria has none).
    rows = (
        MatchCriterion.objects.filter(rule__ruleset=ruleset, rule__is_enabled=True)
        .order_by("rule__position", "rule_id", "id")
        .values_list("rule_id", "rule__name", "field", "method", "scorer", "blank_matches_blank")
    )
    rules: dict[int, tuple[str, list[matching.Criterion]]] = {}
    for rule_id, name, *criterion in rows:
        rules.setdefault(rule_id, (name, []))[1].append(matching.Criterion(*criterion))
    return matching.Spec(
        rules=tuple(matching.Rule(name, tuple(criteria)) for name, criteria in rules.values()),
        auto_threshold=ruleset.auto_threshold,
        review_threshold=ruleset.review_threshold,
        typo_threshold=ruleset.typo_threshold,
        block_cap=ruleset.block_cap,
    )


# ------------------------------------------------------------------ match records


def _match_record(record_id: int, attributes: dict, keys: dict[str, str]) -> dict:
    record = {"id": record_id}
    for name in MATCH_ATTRIBUTES:
        record[name] = attributes.get(name) or ""
    for id_type in MATCH_ID_TYPES:
        record[id_type] = keys.get(id_type, "")
    return record


def profile_match_records(*, profile_ids: list[int] | None = None, chunk: int = 5000):
    """Plain match records of profiles (all when ``profile_ids`` is None), in chunks."""
    if profile_ids is None:
        base = Profile.objects.order_by("pk")
        last = 0
        while True:
            rows = list(base.filter(pk__gt=last).values_list("pk", "attributes")[:chunk])
            if not rows:
                return
            yield from _with_keys(rows)
            last = rows[-1][0]
    else:
        for start in range(0, len(profile_ids), chunk):
            rows = Profile.objects.filter(pk__in=profile_ids[start : start + chunk]).values_list(
                "pk", "attributes"
            )
            yield from _with_keys(list(rows))


def profile_match_columns(*, chunk: int = 20000) -> tuple[list[int], dict[str, list]]:
    """All profiles' match values as columns (ids, field -> values), for full runs.

    One streamed query: attributes are read as text in the database (no JSON decoding in
    Python) and each identifier type's first key (lowest identity id) comes from one grouped
    pass over identities on PostgreSQL (a correlated subquery on the (profile, type) index
    elsewhere), so memory holds columns, never a dict per profile.
    """
    names = (*MATCH_ATTRIBUTES, *MATCH_ID_TYPES)
    if connection.vendor == "postgresql":
        rows = _match_rows_pg(chunk)
    else:
        annotations = {f"m_{name}": KT(f"attributes__{name}") for name in MATCH_ATTRIBUTES}
        for id_type in MATCH_ID_TYPES:
            annotations[f"m_{id_type}"] = Subquery(
                Identity.objects.filter(profile_id=OuterRef("pk"), type=id_type, key__isnull=False)
                .order_by("id")
                .values("key")[:1]
            )
        rows = (
            Profile.objects.order_by("pk")
            .annotate(**annotations)
            .values_list("pk", *annotations)
            .iterator(chunk_size=chunk)
        )
    ids: list[int] = []
    columns: dict[str, list] = {name: [] for name in names}
    appenders = [columns[name].append for name in names]
    for row in rows:
        ids.append(row[0])
        for append, value in zip(appenders, row[1:], strict=True):
            append(value)
    return ids, columns


def _match_rows_pg(chunk: int):
    """(id, *attribute texts, *first key per identifier type) of every profile, streamed."""
    quote = connection.ops.quote_name
    attributes = ", ".join(f"p.attributes ->> '{name}'" for name in MATCH_ATTRIBUTES)
    keys = ", ".join(f"k.{quote(t)}" for t in MATCH_ID_TYPES)
    firsts = ", ".join(
        f"(array_agg(i.key ORDER BY i.id) FILTER (WHERE i.type = '{t}'))[1] AS {quote(t)}"
        for t in MATCH_ID_TYPES
    )
    types = ", ".join(f"'{t}'" for t in MATCH_ID_TYPES)
    sql = f"""
        SELECT p.id, {attributes}, {keys}
        FROM {quote(Profile._meta.db_table)} p LEFT JOIN (
            SELECT i.profile_id, {firsts} FROM {quote(Identity._meta.db_table)} i
            WHERE i.key IS NOT NULL AND i.type IN ({types}) AND i.profile_id IS NOT NULL
            GROUP BY i.profile_id
        ) k ON k.profile_id = p.id
        ORDER BY p.id
    """
    with transaction.atomic():
        with connection.cursor() as settings:
            settings.execute("SET LOCAL jit = off")
            settings.execute("SET LOCAL work_mem = '256MB'")
        with connection.chunked_cursor() as cursor:
            cursor.execute(sql)
            while rows := cursor.fetchmany(chunk):
                yield from rows


def _with_keys(rows: list[tuple[int, dict]]) -> list[dict]:
    keys: dict[int, dict[str, str]] = defaultdict(dict)
    identities = (
        Identity.objects.filter(
            profile_id__in=[pk for pk, _ in rows], type__in=MATCH_ID_TYPES, key__isnull=False
        )
        .order_by("profile_id", "type", "id")
        .values_list("profile_id", "type", "key")
    )
    for profile_id, id_type, key in identities:
        keys[profile_id].setdefault(id_type, key)
    return [_match_record(pk, attributes or {}, keys[pk]) for pk, attributes in rows]


def _strong(record: dict) -> dict[str, str]:
    return {
        "user_id": record.get("user_id", ""),
        "birth_date": matching.normalise_field("birth_date", record.get("birth_date")),
        "first_name": matching.normalise_field("first_name", record.get("first_name")),
        "last_name": matching.normalise_field("last_name", record.get("last_name")),
        "customer_id": (record.get("customer_id") or "").lower(),
        "email": (record.get("email") or "").lower(),
    }


# ------------------------------------------------------------------ suggestions


def do_not_merge_pairs(ids: list[int] | None = None) -> set[tuple[int, int]]:
    """Do-not-merge pairs (all, or those touching ``ids``), each also as the live profiles its
    ids were merged into: a pair kept apart stays apart when either side is absorbed later."""
    rows = DoNotMerge.objects.all()
    if ids is not None:
        old_ids = ProfileRedirect.objects.filter(profile_id__in=ids).values_list("old_id")
        rows = rows.filter(
            Q(left_id__in=ids)
            | Q(right_id__in=ids)
            | Q(left_id__in=old_ids)
            | Q(right_id__in=old_ids)
        )
    pairs = set()
    for left, right, live_left, live_right in rows.annotate(
        live_left=Coalesce(_redirected("left_id"), F("left_id")),
        live_right=Coalesce(_redirected("right_id"), F("right_id")),
    ).values_list("left_id", "right_id", "live_left", "live_right"):
        pairs.add((left, right))
        if live_left != live_right:
            pairs.add(matching.pair_key(live_left, live_right))
    return pairs


def _redirected(column: str) -> Subquery:
    return Subquery(
        ProfileRedirect.objects.filter(old_id=OuterRef(column)).values("profile_id")[:1],
        output_field=BigIntegerField(),
    )


def suggestions_upsert(*, suggestions: list[dict], run: ResolutionRun | None = None) -> int:
    """Create pending suggestions (left < right) unless do-not-merge; refresh existing ones.

    The first of several items for one pair counts; pairs whose profiles are gone are left out.
    On PostgreSQL the items are copied into a temporary table and written by two set-based
    statements (``_suggestions_upsert_pg``).
    """
    if not suggestions:
        return 0
    if connection.vendor == "postgresql":
        return _suggestions_upsert_pg(suggestions, run)
    ids = {s["left"] for s in suggestions} | {s["right"] for s in suggestions}
    dnm = do_not_merge_pairs(list(ids))
    pending = {
        (s.left_id, s.right_id): s
        for s in MergeSuggestion.objects.filter(
            status=MergeSuggestion.Status.PENDING, left_id__in=ids
        )
    }
    live = set(Profile.objects.filter(pk__in=ids).values_list("pk", flat=True))
    created, refreshed, seen = [], [], set()
    for item in suggestions:
        pair = matching.pair_key(item["left"], item["right"])
        if pair in dnm or pair in seen or not set(pair) <= live:
            continue
        seen.add(pair)
        fields = {
            "score": item["score"],
            "field_scores": item["fields"],
            "rule": item["rule"][:200],
        }
        fields["reasons"] = item.get("reasons", [])
        if pair in pending:
            suggestion = pending[pair]
            for name, value in fields.items():
                setattr(suggestion, name, value)
            refreshed.append(suggestion)
        else:
            created.append(MergeSuggestion(left_id=pair[0], right_id=pair[1], run=run, **fields))
    MergeSuggestion.objects.bulk_create(created, batch_size=1000)
    MergeSuggestion.objects.bulk_update(
        refreshed, ["score", "field_scores", "rule", "reasons"], batch_size=500
    )
    return len(created)


SUGGESTION_TABLE = "cdp_suggestion_batch"


@transaction.atomic
def _suggestions_upsert_pg(suggestions: list[dict], run: ResolutionRun | None) -> int:
    """``suggestions_upsert`` as COPY into a temp table, one UPDATE and one INSERT."""
    table = connection.ops.quote_name(MergeSuggestion._meta.db_table)
    dnm = connection.ops.quote_name(DoNotMerge._meta.db_table)
    profile = connection.ops.quote_name(Profile._meta.db_table)
    redirect = connection.ops.quote_name(ProfileRedirect._meta.db_table)
    pending = MergeSuggestion.Status.PENDING
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(f"DROP TABLE IF EXISTS {SUGGESTION_TABLE}, cdp_suggestion_wanted")
        cursor.execute(
            f"CREATE TEMP TABLE {SUGGESTION_TABLE} (ord int, left_id bigint, "
            "right_id bigint, score double precision, field_scores jsonb, rule text, "
            "reasons jsonb) ON COMMIT DROP"
        )
        copy_sql = (
            f"COPY {SUGGESTION_TABLE} (ord, left_id, right_id, score, field_scores, rule, "
            "reasons) FROM STDIN"
        )
        dumps = json.dumps
        with cursor.cursor.copy(copy_sql) as copy:
            for k, item in enumerate(suggestions):
                left, right = matching.pair_key(item["left"], item["right"])
                copy.write_row(
                    (
                        k,
                        left,
                        right,
                        item["score"],
                        dumps(item["fields"]),
                        item["rule"][:200],
                        dumps(item.get("reasons", [])),
                    )
                )
        # First item per pair, both profiles live, not a do-not-merge pair (read through
        # redirects, as ``do_not_merge_pairs`` does).
        cursor.execute(
            f"""
            CREATE TEMP TABLE cdp_suggestion_wanted ON COMMIT DROP AS
            SELECT DISTINCT ON (b.left_id, b.right_id) b.* FROM {SUGGESTION_TABLE} b
            WHERE EXISTS (SELECT 1 FROM {profile} p WHERE p.id = b.left_id)
                AND EXISTS (SELECT 1 FROM {profile} p WHERE p.id = b.right_id)
                AND NOT EXISTS (SELECT 1 FROM {dnm} d
                    LEFT JOIN {redirect} rl ON rl.old_id = d.left_id
                    LEFT JOIN {redirect} rr ON rr.old_id = d.right_id
                    WHERE least(coalesce(rl.profile_id, d.left_id),
                            coalesce(rr.profile_id, d.right_id)) = b.left_id
                        AND greatest(coalesce(rl.profile_id, d.left_id),
                            coalesce(rr.profile_id, d.right_id)) = b.right_id)
            ORDER BY b.left_id, b.right_id, b.ord
            """
        )
        cursor.execute(
            f"""
            UPDATE {table} s SET score = w.score, field_scores = w.field_scores,
                rule = w.rule, reasons = w.reasons
            FROM cdp_suggestion_wanted w
            WHERE s.status = %s AND s.left_id = w.left_id AND s.right_id = w.right_id
            """,
            [pending],
        )
        cursor.execute(
            f"""
            INSERT INTO {table} (left_id, right_id, score, field_scores, rule, reasons,
                status, run_id, created_at)
            SELECT w.left_id, w.right_id, w.score, w.field_scores, w.rule, w.reasons,
                %s, %s, %s
            FROM cdp_suggestion_wanted w
            WHERE NOT EXISTS (SELECT 1 FROM {table} s
                WHERE s.status = %s AND s.left_id = w.left_id AND s.right_id = w.right_id)
            ORDER BY w.ord
            """,
            [pending, run.pk if run else None, timezone.now(), pending],
        )
        return cursor.rowcount


def _score_profile_pairs(pairs: list[tuple[int, int]], spec: matching.Spec) -> list[dict]:
    """Score pairs of profiles (for suggestions made outside a full run)."""
    if not pairs:
        return []
    ids = sorted({p for pair in pairs for p in pair})
    records = list(profile_match_records(profile_ids=ids))
    table = matching.table_build(records)
    index = {pk: k for k, pk in enumerate(table.ids)}
    import numpy as np

    known = [(a, b) for a, b in pairs if a in index and b in index]
    arr = np.array([(index[a], index[b]) for a, b in known], dtype=np.int64).reshape(-1, 2)
    scores = matching.pairs_score(table, arr, spec)
    out = []
    for k, (a, b) in enumerate(known):
        out.append(
            {
                "left": a,
                "right": b,
                "score": float(scores.total[k]),
                "fields": scores.explain(k),
                "rule": scores.rule_name(k, spec),
                "reasons": [],
            }
        )
    return out


# ------------------------------------------------------------------ exact resolution


class _Lazy(dict):
    """A dict whose missing values are computed on first use (and then kept)."""

    def __init__(self, compute) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, key):
        value = self[key] = self.compute(key)
        return value


class _Components:
    """Union-find over changed records that keeps each component's strong values.

    ``strong`` maps a record id to its strong values; it may compute them on first use (only
    records that meet another record by a shared key are ever compared).
    """

    def __init__(self, ids, strong) -> None:
        self.parent = {r: r for r in ids}
        self.members = {r: [r] for r in ids}
        self.strong = strong
        self.vetoed: list[tuple[int, int]] = []

    def find(self, r: int) -> int:
        while self.parent[r] != r:
            self.parent[r] = self.parent[self.parent[r]]
            r = self.parent[r]
        return r

    def conflicts(self, ra: int, rb: int, others: list[dict] | None = None) -> list[str]:
        left = [self.strong[m] for m in self.members[ra]]
        right = others if others is not None else [self.strong[m] for m in self.members[rb]]
        for a in left:
            for b in right:
                reasons = matching.strong_conflicts(a, b)
                if reasons:
                    return reasons
        return []

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if self.conflicts(ra, rb):
            self.vetoed.append((a, b))
            return False
        self.parent[rb] = ra
        self.members[ra].extend(self.members.pop(rb))
        return True


def overshared_keys(identities, cap: int):
    """(type, key, n) rows of the keys among ``identities`` that more than ``cap`` source
    records share: such a value identifies no one (a shop's default, a household line)."""
    return (
        identities.filter(key__isnull=False)
        .values("type", "key")
        .annotate(n=Count("source_record_id", distinct=True))
        .filter(n__gt=cap)
    )


def linkable_keys(*, keys: set[tuple[str, str]], cap: int) -> tuple[set, list[tuple]]:
    """Keys that may link: not a role mailbox, not shared by more than ``cap`` records.

    Returns (linkable keys, [(type, key, record count)] of overshared ones). Counts in SQL.
    """
    allowed = {(t, k) for t, k in keys if not (t == IdentifierTypes.EMAIL and is_role_mailbox(k))}
    overshared = []
    key_values = sorted({k for _, k in allowed})
    for start in range(0, len(key_values), 2000):
        rows = overshared_keys(
            Identity.objects.filter(key__among=key_values[start : start + 2000]), cap
        )
        for row in rows:
            if (row["type"], row["key"]) in allowed:
                allowed.discard((row["type"], row["key"]))
                overshared.append((row["type"], row["key"], row["n"]))
    return allowed, overshared


@transaction.atomic(savepoint=False)
def profiles_resolve(*, source_record_ids: list[int]) -> dict[str, int]:
    """Give each of these source records its profile by exact, guarded identity links.

    Returns counts: profiles created, records assigned, profiles merged (always 0 here: a record
    bridging two profiles joins the better one and the pair becomes a suggestion).

    A record without a profile that shares no linkable key with another record or an existing
    profile (most records of a first import) gets a new profile of its own, whose attributes
    are written with it: the record's values, each sourced from it, so no survivorship pass.

    Every caller writes the records in its own transaction and lets a failure roll it back as
    a whole, so there is no savepoint of its own (two statements per /v1/batch request).
    """
    # In record order, so new profiles get their ids in the order the rows came (deterministic).
    ids = sorted(set(source_record_ids))
    if not ids:
        return {"created": 0, "assigned": 0, "merged": 0}
    ruleset = ruleset_active()
    # The match criteria are read only when a record meets several profiles or a pair is
    # suggested: most batches do neither.
    spec = functools.cache(lambda: ruleset_spec(ruleset))
    cap = ruleset.identifier_cap if ruleset else 20
    current: dict[int, int | None] = {}
    attributes: dict[int, dict] = {}
    for start in range(0, len(ids), 5000):
        rows = (
            SourceRecord.objects.filter(pk__among=ids[start : start + 5000])
            .order_by("pk")
            .values_list("id", "profile_id", "attributes")
        )
        for sr_id, profile_id, attrs in rows:
            current[sr_id], attributes[sr_id] = profile_id, attrs or {}
    record_keys: dict[int, dict[str, str]] = defaultdict(dict)
    all_keys: set[tuple[str, str]] = set()
    for start in range(0, len(ids), 5000):
        rows = Identity.objects.filter(
            source_record_id__among=ids[start : start + 5000], key__isnull=False
        ).values_list("source_record_id", "type", "key")
        for sr_id, id_type, key in rows:
            record_keys[sr_id].setdefault(id_type, key)
            record_keys[sr_id][f"{id_type}:{key}"] = key
            all_keys.add((id_type, key))
    links, _overshared = linkable_keys(keys=all_keys, cap=cap)

    # Match records and strong values are built only for the records that need them.
    match_records = _Lazy(lambda r: _match_record(r, attributes[r], record_keys[r]))
    components = _Components(current, _Lazy(lambda r: _strong(match_records[r])))
    by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
    for sr_id in current:
        for name in record_keys[sr_id]:
            if ":" in name:
                id_type, key = name.split(":", 1)
                if (id_type, key) in links:
                    by_key[(id_type, key)].append(sr_id)
    for members in by_key.values():
        for other in members[1:]:
            components.union(members[0], other)

    # Existing profiles holding the changed records' linkable keys.
    key_owners: dict[tuple[str, str], set[int]] = defaultdict(set)
    # Look keys up by value (one indexed IN list per chunk; an OR of (type, key) pairs is too
    # deep for SQLite's expression limit) and keep the pairs whose type matches too.
    link_values = sorted({key for _type, key in links})
    for start in range(0, len(link_values), 2000):
        rows = (
            Identity.objects.filter(
                key__among=link_values[start : start + 2000], profile__isnull=False
            )
            .values_list("type", "key", "profile_id")
            .distinct()
        )
        for id_type, key, profile_id in rows:
            if (id_type, key) in links:
                key_owners[(id_type, key)].add(profile_id)

    groups: dict[int, list[int]] = defaultdict(list)
    for sr_id in current:
        groups[components.find(sr_id)].append(sr_id)
    candidate_ids = {p for owners in key_owners.values() for p in owners}
    candidate_ids |= {p for p in current.values() if p}
    profile_records = {r["id"]: r for r in profile_match_records(profile_ids=sorted(candidate_ids))}
    profile_strong = {pk: _strong(r) for pk, r in profile_records.items()}
    dnm = do_not_merge_pairs(sorted(candidate_ids)) if candidate_ids else set()

    now = timezone.now()
    # New profiles in creation order: (records, attributes and sources when it has one record).
    new_profiles: list[tuple[list[int], tuple[dict, dict] | None]] = []
    assignment: dict[int, int] = {}
    bridges: list[tuple[int, int]] = []
    for records in groups.values():
        candidates: set[int] = set()
        for r in records:
            if current[r]:
                candidates.add(current[r])
            for name in record_keys[r]:
                if ":" in name:
                    candidates |= key_owners.get(tuple(name.split(":", 1)), set())
        if not candidates and len(records) == 1:
            # One new record meeting no one: a profile of its own, made from it.
            new_profiles.append((records, single_record_values(records[0], attributes[records[0]])))
            continue
        assigned = sorted({current[r] for r in records if current[r]})
        strong = [components.strong[r] for r in records]
        eligible = sorted(
            p
            for p in candidates
            if p in assigned
            or not any(matching.strong_conflicts(s, profile_strong.get(p, {})) for s in strong)
        )
        unassigned = [r for r in records if not current[r]]
        target = None
        if assigned:
            target = (
                assigned[0]
                if len(assigned) == 1
                else _best(records, assigned, match_records, profile_records, spec())
            )
        elif eligible:
            target = (
                eligible[0]
                if len(eligible) == 1
                else _best(records, eligible, match_records, profile_records, spec())
            )
        for other in sorted(candidates - {target} if target else candidates):
            if target is not None and matching.pair_key(target, other) not in dnm:
                bridges.append(matching.pair_key(target, other))
        if target is None:
            new_profiles.append((unassigned, None))
            continue
        for r in unassigned:
            assignment[r] = target
        # A later group of this batch meets the target with these records' values too (two
        # users identified on one shared device are two groups with the same candidate).
        target_strong = profile_strong.setdefault(target, {})
        for values in strong:
            for name, value in values.items():
                if value and not target_strong.get(name):
                    target_strong[name] = value
    made = _profiles_insert([values or ({}, {}) for _records, values in new_profiles], now=now)
    complete: set[int] = set()
    for pk, (records, values) in zip(made, new_profiles, strict=True):
        for sr_id in records:
            assignment[sr_id] = pk
        if values is not None:
            complete.add(pk)
    profile_ids_set(SourceRecord, list(assignment.items()))
    profile_links_set(
        profile_of_record={sr_id: assignment.get(sr_id) or current[sr_id] for sr_id in ids}
    )
    touched = {assignment.get(sr_id) or current[sr_id] for sr_id in ids}
    profile_attributes_refresh(
        profile_ids=[p for p in touched if p and p not in complete], ruleset=ruleset
    )
    # Conflicting candidates that got no profile of their own yet: pair them with the new one.
    for pk, (records, values) in zip(made, new_profiles, strict=True):
        if values is not None:
            continue  # it met no existing profile
        for r in records:
            for name in record_keys[r]:
                if ":" in name:
                    for other in key_owners.get(tuple(name.split(":", 1)), set()):
                        if matching.pair_key(pk, other) not in dnm:
                            bridges.append(matching.pair_key(other, pk))
    # Records kept apart by a guard inside this batch: their profiles are a pair to review.
    for a, b in components.vetoed:
        pa, pb = assignment.get(a) or current[a], assignment.get(b) or current[b]
        if pa and pb and pa != pb and matching.pair_key(pa, pb) not in dnm:
            bridges.append(matching.pair_key(pa, pb))
    merged = _anonymous_bridges_merge(bridges)
    bridges = [pair for pair in bridges if not (set(pair) & merged)]
    if bridges:
        scored = _score_profile_pairs(sorted(set(bridges)), spec())
        for item in scored:
            item["reasons"] = ["shares an identifier with both sides"]
            item["rule"] = item["rule"] or "shared identifier"
        suggestions_upsert(suggestions=scored)
    return {"created": len(new_profiles), "assigned": len(assignment), "merged": len(merged)}


def _profiles_insert(values: list[tuple[dict, dict]], *, now) -> list[int]:
    """Insert one profile per (attributes, sources), in order; returns their ids in order."""
    rows = [(*profile_column_values(attrs), attrs, sources, now, now) for attrs, sources in values]
    return rows_insert_returning_ids(
        Profile,
        [*PROFILE_COLUMNS, "attributes", "attribute_sources", "created_at", "updated_at"],
        rows,
    )


def _anonymous_bridges_merge(bridges: list[tuple[int, int]]) -> set[int]:
    """Merge the bridged pairs where one side is only an anonymous visitor; return merged ids.

    A profile known by nothing but anonymous ids holds no one's personal data, and an identify
    or alias naming its anonymous id is the SDK's own statement that it is that person (Segment
    identity stitching). Two known people are never merged by a bridge: that pair is reviewed.
    """
    pairs = sorted(set(bridges))
    if not pairs:
        return set()
    ids = sorted({p for pair in pairs for p in pair})
    known = set(
        Identity.objects.filter(profile_id__in=ids, key__isnull=False)
        .exclude(type=IdentifierTypes.ANONYMOUS_ID)
        .values_list("profile_id", flat=True)
        .distinct()
    )
    anonymous = (
        set(
            Identity.objects.filter(profile_id__in=ids, type=IdentifierTypes.ANONYMOUS_ID)
            .values_list("profile_id", flat=True)
            .distinct()
        )
        - known
    )
    groups = _Groups()
    for a, b in pairs:
        if a in anonymous or b in anonymous:
            groups.union(a, b)
    merged: set[int] = set()
    for members in groups.members():
        survivor, *others = sorted(members)
        profiles_merge(
            survivor_id=survivor,
            other_ids=others,
            reason="anonymous visitor identified (identify or alias)",
        )
        merged.update(others)
    return merged


class _Groups:
    """Union-find over profile ids."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)

    def members(self) -> list[list[int]]:
        out: dict[int, list[int]] = defaultdict(list)
        for x in list(self.parent):
            out[self.find(x)].append(x)
        return [m for m in out.values() if len(m) > 1]


def _best(records, profile_ids, match_records, profile_records, spec) -> int:
    """The candidate profile the records match best (highest score; ties: the oldest id)."""
    import numpy as np

    merged: dict = {"id": -1}
    for r in records:
        for name, value in match_records[r].items():
            if name != "id" and value and not merged.get(name):
                merged[name] = value
    rows = [merged, *(profile_records.get(p, {"id": p}) for p in profile_ids)]
    table = matching.table_build(rows)
    pairs = np.array([(0, k) for k in range(1, len(rows))], dtype=np.int64)
    totals = matching.pairs_score(table, pairs, spec).total
    return max(zip(totals.tolist(), [-p for p in profile_ids], strict=True))[1] * -1


def profile_resolve_id(profile_id: int) -> Profile | None:
    """The live profile for an id, following a merge redirect."""
    profile = Profile.objects.filter(pk=profile_id).first()
    if profile is not None:
        return profile
    redirect = ProfileRedirect.objects.select_related("profile").filter(old_id=profile_id).first()
    return redirect.profile if redirect else None


# ------------------------------------------------------------------ full runs


def resolution_run_create(
    *, ruleset: Ruleset, dry_run: bool = False, actor=None, sync: bool = False
) -> ResolutionRun:
    """Queue a full run (or dry run) of a ruleset as a django-q2 job."""
    run = ResolutionRun.objects.create(
        ruleset=ruleset, dry_run=dry_run, created_by=actor if getattr(actor, "pk", None) else None
    )

    audit_record(
        actor=actor,
        action="resolution_run.dry_run" if dry_run else "resolution_run.start",
        target=run,
        details={"ruleset": ruleset.name},
    )
    job_enqueue("profiles.tasks.resolution_run_execute", run.pk, sync=sync)
    return run


def _progress(run: ResolutionRun, step: str, done: int, total: int) -> None:
    run.step, run.progress_done, run.progress_total = step, done, total
    ResolutionRun.objects.filter(pk=run.pk).update(
        step=step, progress_done=done, progress_total=total
    )


def _label(table: matching.Table, index: int) -> str:
    name = f"{table.raw['first_name'][index]} {table.raw['last_name'][index]}".strip()
    return f"#{table.ids[index]} {name}".strip()


def resolution_run_execute(*, run: ResolutionRun) -> ResolutionRun:
    """Score all profiles' candidate pairs; merge, suggest (or, for a dry run, only report)."""
    ResolutionRun.objects.filter(pk=run.pk).update(
        status=ResolutionRun.Status.RUNNING, started_at=timezone.now()
    )
    try:
        report = _run(run)
    except Exception as exc:
        ResolutionRun.objects.filter(pk=run.pk).update(
            status=ResolutionRun.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        raise
    ResolutionRun.objects.filter(pk=run.pk).update(
        status=ResolutionRun.Status.SUCCEEDED, report=report, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


def _unlinkable_keys_drop(columns: dict[str, list], overshared: set[tuple[str, str]]) -> None:
    """Blank (in place) the identifier keys that must not link: role mailboxes and values on
    more records than the cap are no evidence in a full run either, as in exact links."""
    for id_type in MATCH_ID_TYPES:
        blocked = {key for t, key in overshared if t == id_type}
        check_role = id_type == IdentifierTypes.EMAIL
        if not blocked and not check_role:
            continue
        column = columns[id_type]
        for k, key in enumerate(column):
            if key and (key in blocked or (check_role and is_role_mailbox(key))):
                column[k] = None


def _raw_fields(spec: matching.Spec) -> set[str]:
    """Columns kept as cleaned raw text: names (labels) and fields of ``exact`` criteria."""
    exact = {
        c.field for rule in spec.rules for c in rule.criteria if c.method == matching.Method.EXACT
    }
    return {"first_name", "last_name", *exact}


def _run(run: ResolutionRun) -> dict:
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    spec = ruleset_spec(run.ruleset)
    profiles_before = Profile.objects.count()
    records_total = SourceRecord.objects.count()
    _progress(run, "loading profiles", 0, profiles_before)
    ids, columns = profile_match_columns()
    overshared = list(
        overshared_keys(Identity.objects.all(), run.ruleset.identifier_cap).order_by("-n")
    )
    _unlinkable_keys_drop(columns, {(row["type"], row["key"]) for row in overshared})
    table = matching.table_from_columns(ids, columns, raw_fields=_raw_fields(spec))
    del columns
    index = {pk: k for k, pk in enumerate(table.ids)}
    timings["load"] = time.perf_counter() - clock
    clock = time.perf_counter()
    _progress(run, "blocking", len(table), profiles_before)
    pairs, blocking = matching.candidate_pairs(table, block_cap=spec.block_cap)
    timings["blocking"] = time.perf_counter() - clock
    clock = time.perf_counter()
    _progress(run, "scoring", 0, len(pairs))
    scores = matching.pairs_score(table, pairs, spec)
    timings["scoring"] = time.perf_counter() - clock
    clock = time.perf_counter()
    dnm = do_not_merge_pairs()
    decisions = matching.decide(table, scores, spec, do_not_merge=dnm)
    del scores, pairs
    timings["deciding"] = time.perf_counter() - clock
    clock = time.perf_counter()

    splits = _splits(spec, table, index)
    timings["reporting"] = time.perf_counter() - clock
    clock = time.perf_counter()
    merged_away = sum(len(c) - 1 for c in decisions.merges)
    created = 0
    skipped: list[list[int]] = []
    if not run.dry_run:
        _progress(run, "merging", 0, len(decisions.merges))
        result = profiles_merge_many(
            clusters=decisions.merges,
            reason=f"fuzzy: ruleset {run.ruleset.name}",
            details={"run": run.pk},
            progress=lambda done, total: _progress(run, "merging", done, total),
        )
        skipped = result.skipped
        merged_away = result.absorbed
        timings["merging"] = time.perf_counter() - clock
        clock = time.perf_counter()
        created = suggestions_upsert(suggestions=decisions.suggestions, run=run)
        timings["suggesting"] = time.perf_counter() - clock
    profiles_after = profiles_before - merged_away
    return {
        "dry_run": run.dry_run,
        "ruleset": run.ruleset.name,
        "source_records": records_total,
        "profiles_before": profiles_before,
        "profiles_after": profiles_after,
        "merges": len(decisions.merges) - len(skipped),
        "merges_skipped": len(skipped),
        "profiles_merged_away": merged_away,
        "suggestions": len(decisions.suggestions),
        "suggestions_created": created,
        "blocked_by_guards": decisions.blocked,
        "splits": len(splits),
        "consolidation_rate": round(1 - profiles_after / records_total, 4) if records_total else 0,
        "candidate_pairs": int(blocking.pairs),
        "candidate_pairs_by_key": blocking.pairs_by_key,
        "oversized_blocks": [list(b) for b in blocking.oversized_blocks[:20]],
        "oversized_blocks_total": len(blocking.oversized_blocks),
        "overshared_identifiers": [
            {"type": row["type"], "records": row["n"]} for row in overshared[:20]
        ],
        "examples": {
            "merges": [[_label(table, index[i]) for i in c] for c in decisions.merges[:10]],
            "suggestions": [
                {
                    "left": _label(table, index[s["left"]]),
                    "right": _label(table, index[s["right"]]),
                    "score": s["score"],
                    "reasons": s["reasons"],
                }
                for s in decisions.suggestions[:10]
            ],
            "splits": splits[:10],
        },
        "seconds": {k: round(v, 2) for k, v in timings.items()},
    }


def _splits(spec: matching.Spec, table: matching.Table, index: dict[int, int]) -> list[str]:
    """Earlier fuzzy merges this ruleset would no longer make (for dry runs of a new ruleset).

    Every (survivor, absorbed profile as it was) pair of the live fuzzy merge logs is scored
    in one vectorised call against the survivor as it is now.
    """
    import numpy as np

    survivors, absorbed, labels = [], [], []
    logs = MergeLog.objects.filter(unmerged_at__isnull=True, reason__startswith="fuzzy")
    for survivor_id, snapshot in logs.values_list("survivor_id", "snapshot").iterator(
        chunk_size=2000
    ):
        if survivor_id not in index:
            continue
        for entry in snapshot:
            attributes = entry["fields"].get("attributes") or {}
            survivors.append(index[survivor_id])
            absorbed.append(_match_record(entry["id"], attributes, {}))
            labels.append(f"#{entry['id']} from #{survivor_id}")
    if not absorbed:
        return []
    fields = tuple(table.norm)
    own = matching.table_build(absorbed, fields, raw_fields=_raw_fields(spec))
    both = matching.Table(
        ids=[*table.ids, *own.ids],
        raw={f: np.concatenate([table.raw[f], own.raw[f]]) for f in fields},
        norm={f: np.concatenate([table.norm[f], own.norm[f]]) for f in fields},
    )
    pairs = np.stack([np.asarray(survivors), len(table) + np.arange(len(absorbed))], axis=1).astype(
        np.int64
    )
    scores = matching.pairs_score(both, pairs, spec)
    kept = scores.automatic(spec)
    return [label for label, ok in zip(labels, kept.tolist(), strict=True) if not ok]


def report_lines(report: dict) -> list[str]:
    """The report as text lines (command line, admin)."""
    lines = [
        f"{'Dry run' if report.get('dry_run') else 'Run'} of ruleset {report.get('ruleset')}",
        f"source records:        {report.get('source_records')}",
        f"profiles before/after: {report.get('profiles_before')} -> {report.get('profiles_after')}",
        f"merges:                {report.get('merges')} "
        f"({report.get('profiles_merged_away')} profiles absorbed)",
        f"suggestions:           {report.get('suggestions')}",
        f"blocked by guards:     {report.get('blocked_by_guards')}",
        f"splits (earlier fuzzy merges this ruleset would not make): {report.get('splits')}",
        f"consolidation rate:    {report.get('consolidation_rate')}",
        f"candidate pairs:       {report.get('candidate_pairs')}",
    ]
    for row in report.get("overshared_identifiers", []):
        lines.append(f"identifier shared too widely: a {row['type']} on {row['records']} records")
    for kind, sizes in report.get("oversized_blocks", []):
        lines.append(f"blocking key {kind} skipped: {sizes} records")
    examples = report.get("examples", {})
    for merge in examples.get("merges", []):
        lines.append("merge: " + " + ".join(merge))
    for s in examples.get("suggestions", []):
        lines.append(f"suggest: {s['left']} ~ {s['right']} ({s['score']})")
    for split in examples.get("splits", []):
        lines.append(f"split: {split}")
    return lines
