"""The suppression list: erased persons' identifiers, as salted hashes, checked per batch.

``suppression_check`` is the one function the import pipeline and the tracking API call with a
whole batch: one SELECT for the batch, one UPDATE of the hit counters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable

from django.db.models import Case, F, IntegerField, Value, When
from django.utils import timezone

from cdp.normalize import IdentifierKey, InvalidValue, identifier_key
from consent.hashing import identifier_hash
from consent.models import Suppression


def identity_keys(pairs: Iterable[tuple[str, object]], region: str = "") -> list[tuple[str, str]]:
    """Normalise raw (type, value) pairs to (type, match key); values without a key are left out."""
    keys = []
    for id_type, raw in pairs:
        try:
            result = identifier_key(id_type, raw, region=region or None)
        except InvalidValue:
            result = IdentifierKey(None, "invalid")
        if result.key:
            keys.append((id_type, result.key))
    return keys


def suppression_check(
    *, identities_by_item: dict[Hashable, Iterable[tuple[str, str]]], count: bool = True
) -> set[Hashable]:
    """The items (rows, messages) carrying any suppressed identifier; their hits are counted.

    ``identities_by_item`` maps an item id to its (type, normalised key) pairs.
    """
    hashes_by_item: dict[Hashable, set[tuple[str, str]]] = {}
    wanted: set[str] = set()
    for item, pairs in identities_by_item.items():
        hashed = {(id_type, identifier_hash(id_type, key)) for id_type, key in pairs if key}
        if hashed:
            hashes_by_item[item] = hashed
            wanted.update(h for _, h in hashed)
    if not wanted:
        return set()
    found: dict[tuple[str, str], int] = {}
    wanted_list = sorted(wanted)
    for start in range(0, len(wanted_list), 2000):
        rows = Suppression.objects.filter(key_hash__in=wanted_list[start : start + 2000])
        for pk, id_type, key_hash in rows.values_list("pk", "id_type", "key_hash"):
            found[(id_type, key_hash)] = pk
    hits: Counter[int] = Counter()
    suppressed = set()
    for item, hashed in hashes_by_item.items():
        matched = [found[h] for h in hashed if h in found]
        if matched:
            suppressed.add(item)
            hits[min(matched)] += 1
    if count and hits:
        Suppression.objects.filter(pk__in=list(hits)).update(
            hits=F("hits")
            + Case(
                *[When(pk=pk, then=Value(n)) for pk, n in hits.items()],
                default=Value(0),
                output_field=IntegerField(),
            ),
            last_hit_at=timezone.now(),
        )
    return suppressed


def suppression_add(*, keys: Iterable[tuple[str, str]], request=None) -> int:
    """Add normalised identifiers to the list (idempotent). Returns how many were new."""
    rows = {(t, identifier_hash(t, k)) for t, k in keys if k}
    if not rows:
        return 0
    existing = set(
        Suppression.objects.filter(key_hash__in=[h for _, h in rows]).values_list(
            "id_type", "key_hash"
        )
    )
    new = [
        Suppression(id_type=t, key_hash=h, request=request)
        for t, h in sorted(rows)
        if (t, h) not in existing
    ]
    Suppression.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)
