"""Fuzzy matching: blocking, per-field similarity, scores, guards and clustering.

Pure functions over plain values (no ORM), so the resolution service, the review page and the
benchmarks share exactly the same rules. Vocabulary (as in Salesforce Data Cloud): a ruleset has
match rules that are OR'ed; the criteria of one rule are AND'ed. Independently of the rules each
compared field contributes points to a total score (Fellegi-Sunter style: agreement adds,
disagreement subtracts, a missing value adds nothing). A pair is merged automatically when a rule
matches, the score reaches the upper threshold and no guard objects; it becomes a suggestion in
the review band; below it nothing happens. A second, lower bar (``typo_threshold``) lets a pair
merge without a rule when it has no conflicting strong field and its birth dates are the same or
one typo apart (see ``typo_consistent``): typos in several strong fields each take points off a
pair that has nothing against it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA, JaroWinkler
from rapidfuzz.process import cpdist

from cdp.normalize import (
    clean_text,
    normalize_address,
    normalize_date,
    normalize_id,
    normalize_name,
)


class Method:
    EXACT = "exact"
    EXACT_NORMALISED = "exact_normalised"
    FUZZY_HIGH = "fuzzy_high"
    FUZZY_MEDIUM = "fuzzy_medium"
    FUZZY_LOW = "fuzzy_low"

    CHOICES = (
        (EXACT, "Exact"),
        (EXACT_NORMALISED, "Exact (normalised)"),
        (FUZZY_HIGH, "Fuzzy: high (≥ 0.92)"),
        (FUZZY_MEDIUM, "Fuzzy: medium (≥ 0.85)"),
        (FUZZY_LOW, "Fuzzy: low (≥ 0.75)"),
    )
    LEVELS = {FUZZY_HIGH: 0.92, FUZZY_MEDIUM: 0.85, FUZZY_LOW: 0.75}


# thefuzz's scorers (rapidfuzz implements them) plus Jaro-Winkler; "default" = the field's own.
SCORERS = {
    "jaro_winkler": JaroWinkler.normalized_similarity,
    "ratio": fuzz.ratio,
    "partial_ratio": fuzz.partial_ratio,
    "token_sort_ratio": fuzz.token_sort_ratio,
    "token_set_ratio": fuzz.token_set_ratio,
}
SCORER_SCALE = {"jaro_winkler": 1.0}  # the fuzz.* scorers return 0..100
KEY_TYPO_MIN_LENGTH = 5  # an identifier one edit off is a typo only from this length on


@dataclass(frozen=True)
class FieldSpec:
    """How one field is normalised, compared and weighted.

    ``agree`` points when the values are equal, ``disagree`` (negative) when they are unlike;
    in between the points are interpolated by similarity above ``floor``.
    """

    label: str
    kind: str  # name, address, date, code, key
    agree: float
    disagree: float
    floor: float = 0.0
    scorer: str = "jaro_winkler"


FIELDS: dict[str, FieldSpec] = {
    "first_name": FieldSpec("First name", "name", 4.5, -3.0, 0.7),
    "last_name": FieldSpec("Last name", "name", 5.5, -3.5, 0.7),
    "birth_date": FieldSpec("Birth date", "date", 6.0, -5.0),
    "email": FieldSpec("E-mail", "key", 8.0, -0.5),
    "phone": FieldSpec("Phone", "key", 7.0, -0.5),
    "street": FieldSpec("Street", "address", 4.0, -2.0, 0.5, "token_sort_ratio"),
    "street2": FieldSpec("Street (line 2)", "address", 2.0, -0.5, 0.5, "token_sort_ratio"),
    "postcode": FieldSpec("Postcode", "code", 3.0, -2.0),
    "city": FieldSpec("City", "name", 2.5, -1.5, 0.7),
    "state": FieldSpec("State", "code", 0.5, -1.5),
    # One number per person per source, so agreeing is as strong as a user id; a person has a
    # number in each source (and duplicates within one have two), so different ones say little.
    "customer_id": FieldSpec("Customer number", "key", 10.0, -1.0),
    "user_id": FieldSpec("User id", "key", 10.0, -8.0),
}


@dataclass(frozen=True)
class Criterion:
    field: str
    method: str = Method.EXACT_NORMALISED
    scorer: str = "default"
    blank_matches_blank: bool = False


@dataclass(frozen=True)
class Rule:
    name: str
    criteria: tuple[Criterion, ...]


@dataclass(frozen=True)
class Spec:
    """A ruleset as plain values: rules, thresholds on the total score, blocking cap.

    ``typo_threshold`` (None: off) is the total at which a typo-consistent pair merges even
    when no rule matches (``typo_consistent``).
    """

    rules: tuple[Rule, ...]
    auto_threshold: float = 16.0
    review_threshold: float = 7.0
    typo_threshold: float | None = 14.0
    block_cap: int = 200
    fields: tuple[str, ...] = tuple(FIELDS)

    def scorer_for(self, name: str) -> str:
        for rule in self.rules:
            for criterion in rule.criteria:
                if criterion.field == name and criterion.scorer != "default":
                    return criterion.scorer
        return FIELDS[name].scorer


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("Same e-mail and similar name", (Criterion("email"), Criterion("last_name", "fuzzy_low"))),
    Rule(
        "Same phone, name and no other birth date",
        (Criterion("phone"), Criterion("first_name", "fuzzy_high")),
    ),
    Rule(
        "Name and birth date",
        (
            Criterion("first_name", "fuzzy_medium"),
            Criterion("last_name", "fuzzy_medium"),
            Criterion("birth_date", "fuzzy_low"),
        ),
    ),
    Rule(
        "Name and address",
        (
            Criterion("first_name", "fuzzy_medium"),
            Criterion("last_name", "fuzzy_medium"),
            Criterion("street", "fuzzy_medium"),
        ),
    ),
    Rule(
        "Last name, birth date and postcode",
        (
            Criterion("last_name", "fuzzy_medium"),
            Criterion("birth_date", "exact_normalised"),
            Criterion("postcode", "exact_normalised"),
        ),
    ),
    Rule(
        "Customer number and name",
        (Criterion("customer_id", "fuzzy_low"), Criterion("last_name", "fuzzy_medium")),
    ),
    Rule(
        "Customer number and birth date",
        (Criterion("customer_id", "fuzzy_low"), Criterion("birth_date", "fuzzy_low")),
    ),
    Rule(
        "Customer number and address",
        (Criterion("customer_id"), Criterion("street", "fuzzy_medium")),
    ),
    Rule(
        "First name, birth date and address (a changed last name)",
        (
            Criterion("first_name", "fuzzy_medium"),
            Criterion("birth_date"),
            Criterion("street", "fuzzy_medium"),
        ),
    ),
)
DEFAULT_SPEC = Spec(rules=DEFAULT_RULES)


# ---------------------------------------------------------------- preparing records


def normalise_field(name: str, value: object) -> str:
    """The match form of one field value ('' = missing, never evidence)."""
    if value is None:
        return ""
    kind = FIELDS[name].kind if name in FIELDS else "name"
    if kind == "name":
        return normalize_name(value)
    if kind == "address":
        return normalize_address(value)
    if kind == "date":
        return normalize_date(value).replace("-", "")
    if kind == "code":
        return re.sub(r"\s+", "", clean_text(value).lower())
    return normalize_id(value).lower()


@dataclass
class Table:
    """Records in columns: ``ids`` and, per field, raw (cleaned) and normalised values.

    Columns are numpy object arrays of ``str`` ('' = missing), so a column can be indexed by
    an array of row numbers at C speed (``table.norm["email"][pairs[:, 0]]``).
    """

    ids: list[int]
    raw: dict[str, np.ndarray]
    norm: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.ids)

    def record(self, index: int) -> dict[str, str]:
        return {name: column[index] for name, column in self.norm.items()}


def _object_array(values: list[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def table_build(
    records: Iterable[dict],
    fields: Iterable[str] = tuple(FIELDS),
    *,
    raw_fields: Iterable[str] | None = None,
) -> Table:
    """Columns from dicts with an ``id`` and field values (identity keys already normalised)."""
    fields = tuple(fields)
    ids: list[int] = []
    columns: dict[str, list] = {f: [] for f in fields}
    for record in records:
        ids.append(record["id"])
        for name in fields:
            columns[name].append(record.get(name))
    return table_from_columns(ids, columns, raw_fields=raw_fields)


def table_from_columns(
    ids: list[int], columns: dict[str, list], *, raw_fields: Iterable[str] | None = None
) -> Table:
    """A table from value lists per field (None or '' = missing).

    Normalisation is memoised per distinct value of a field (names, cities, dates repeat a
    lot), so a million records cost far less than a million calls per field. ``raw_fields``
    limits the cleaned-but-not-normalised columns (used by ``exact`` criteria and labels) to
    save memory; the others are left empty.
    """
    raw_fields = set(columns if raw_fields is None else raw_fields)
    norm: dict[str, np.ndarray] = {}
    raw: dict[str, np.ndarray] = {}
    empty = _object_array([""] * len(ids))
    for name, values in columns.items():
        cache: dict = {None: ("", ""), "": ("", "")}
        is_key = FIELDS.get(name, FIELDS["first_name"]).kind == "key"

        def forms(value, name=name, cache=cache, is_key=is_key):
            if is_key and type(value) is str and value.isascii() and value == value.strip():
                return value, value.lower()  # an identity key: already clean, mostly unique
            try:
                return cache[value]
            except (KeyError, TypeError):
                pair = (clean_text(value), normalise_field(name, value))
                if isinstance(value, str):
                    cache[value] = pair
                return pair

        pairs = [forms(v) for v in values]
        norm[name] = _object_array([p[1] for p in pairs])
        raw[name] = _object_array([p[0] for p in pairs]) if name in raw_fields else empty
    return Table(list(ids), raw, norm)


# ---------------------------------------------------------------- blocking

_SOUNDEX = str.maketrans("bfpvcgjkqsxzdtlmnr", "111122222222334556", "aeiouyhw")


@lru_cache(maxsize=500_000)
def soundex(word: str) -> str:
    """American Soundex of a folded word ('' for an empty one)."""
    word = re.sub(r"[^a-z]", "", word)
    if not word:
        return ""
    coded = []
    last = ""
    for ch in word:
        code = ch.translate(_SOUNDEX) if ch not in "aeiouyhw" else ""
        if code and code != last:
            coded.append(code)
        last = code if ch not in "hw" else last
    first = word[0].upper()
    if coded and word[0].translate(_SOUNDEX) == coded[0]:
        coded = coded[1:]
    return (first + "".join(coded) + "000")[:4]


def _names_city(first: str, last: str, city: str) -> str:
    a, b = sorted((soundex(first.replace(" ", "")), soundex(last.replace(" ", ""))))
    return f"{a}:{b}:{city[:3]}" if a and b else ""


# (kind, fields, make): a key is made only when every field is known, so blanks never group
# records. Each kind is selective on its own (a name sound alone is not: "Smith, J" makes
# blocks of thousands at a million records); their union finds the pairs (bench/README.md).
BLOCKING_KEYS: tuple[tuple[str, tuple[str, ...], object], ...] = (
    ("email", ("email",), lambda v: v),
    ("phone", ("phone",), lambda v: v),
    ("customer_id", ("customer_id",), lambda v: v),
    ("user_id", ("user_id",), lambda v: v),
    ("dob-fn", ("birth_date", "first_name"), lambda d, f: f"{d}:{f[:1]}"),
    ("dob-ln", ("birth_date", "last_name"), lambda d, ln: f"{d}:{ln[:1]}"),
    ("pc-ln", ("postcode", "last_name"), lambda p, ln: f"{p}:{ln[:3]}"),
    ("pc-fn", ("postcode", "first_name"), lambda p, f: f"{p}:{f[:3]}"),
    ("dob-pc", ("birth_date", "postcode"), lambda d, p: f"{d}:{p}"),
    ("st", ("street", "postcode"), lambda s, p: f"{s[:6]}:{p}"),
    ("st-dob", ("street", "birth_date"), lambda s, d: f"{s[:4]}:{d}"),
    ("nm-city", ("first_name", "last_name", "city"), _names_city),
)


def blocking_keys(record: dict[str, str]) -> list[str]:
    """The blocking keys of one normalised record (``kind:value``), as ``candidate_pairs``
    makes them for a whole table. A pair is compared only when it shares at least one key."""
    keys = []
    for kind, fields, make in BLOCKING_KEYS:
        values = [record.get(f, "") for f in fields]
        if all(values):
            key = make(*values)
            if key:
                keys.append(f"{kind}:{key}")
    return keys


@dataclass
class BlockingReport:
    keys: int = 0
    pairs: int = 0
    oversized_blocks: list[tuple[str, int]] = field(default_factory=list)
    pairs_by_key: dict[str, int] = field(default_factory=dict)


def _key_codes(table: Table, fields: tuple[str, ...], make) -> np.ndarray:
    """Per row an integer code of its key (-1: no key), equal codes = equal keys."""
    columns = [table.norm.get(f) for f in fields]
    if any(c is None for c in columns):
        return np.full(len(table), -1, dtype=np.int64)
    codes: dict[str, int] = {}
    out = np.full(len(table), -1, dtype=np.int64)
    known = np.ones(len(table), dtype=bool)
    for column in columns:
        known &= column != ""
    rows = np.flatnonzero(known)
    if len(rows) == 0:
        return out
    if len(columns) == 1:
        keys = columns[0][rows]
    else:
        keys = [make(*values) for values in zip(*(c[rows] for c in columns), strict=True)]
    setdefault = codes.setdefault
    out[rows] = [setdefault(k, len(codes)) if k else -1 for k in keys]
    return out


def _block_pairs(codes: np.ndarray, cap: int) -> tuple[np.ndarray, list[int]]:
    """Pair codes (i * n + j, i < j) of rows sharing a code; sizes of blocks over ``cap``."""
    n = len(codes)
    rows = np.flatnonzero(codes >= 0)
    if len(rows) < 2:
        return np.empty(0, dtype=np.int64), []
    order = rows[np.argsort(codes[rows], kind="stable")]
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    oversized = sizes[sizes > cap].tolist()
    chunks = []
    for size in np.unique(sizes[(sizes >= 2) & (sizes <= cap)]).tolist():
        group_starts = starts[sizes == size]
        members = order[group_starts[:, None] + np.arange(size)]  # (groups, size), ascending
        a, b = np.triu_indices(size, k=1)
        chunks.append((members[:, a] * n + members[:, b]).ravel())
    if not chunks:
        return np.empty(0, dtype=np.int64), oversized
    return np.concatenate(chunks), oversized


def candidate_pairs(table: Table, *, block_cap: int = 200) -> tuple[np.ndarray, BlockingReport]:
    """Unique (i, j) index pairs, i < j, sharing a blocking key; blocks over the cap are skipped.

    Vectorised per key kind: rows get an integer code per kind, blocks are runs of equal codes,
    and all blocks of one size are expanded at once. Returns an (n, 2) int64 array of row
    indexes into ``table`` and a report (skipped blocks by kind and size, never the value;
    pairs per kind before de-duplication).
    """
    report = BlockingReport()
    chunks = []
    for kind, fields, make in BLOCKING_KEYS:
        codes = _key_codes(table, fields, make)
        report.keys += int(codes.max()) + 1 if len(codes) else 0
        pair_codes, oversized = _block_pairs(codes, block_cap)
        report.oversized_blocks.extend((kind, size) for size in oversized)
        report.pairs_by_key[kind] = len(pair_codes)
        chunks.append(pair_codes)
    n = len(table)
    codes = np.unique(np.concatenate(chunks)) if chunks else np.empty(0, dtype=np.int64)
    pairs = np.stack([codes // max(n, 1), codes % max(n, 1)], axis=1).astype(np.int64)
    report.pairs = len(pairs)
    return pairs.reshape(-1, 2), report


# ---------------------------------------------------------------- similarity and scores


def _similarity_column(kind: str, scorer: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Similarity 0..1 of each (a[k], b[k]); NaN where either side is missing."""
    n = len(a)
    if n == 0:
        return np.empty(0)
    missing = (a == "") | (b == "")
    sim = np.full(n, np.nan)
    present = np.flatnonzero(~missing)
    if len(present) == 0:
        return sim
    left, right = a[present], b[present]
    if kind in ("date", "code", "key"):
        # Equal is 1; one typo (an edit or two swapped neighbours) is partial evidence. In a
        # short identifier ("C-1", "C-2") one character is all there is: another identifier.
        dist = cpdist(left, right, scorer=OSA.distance, workers=-1)
        partial = 0.8 if kind == "date" else 0.6
        typo = dist == 1
        if kind == "key" and typo.any():
            rows = np.flatnonzero(typo)
            short = np.fromiter(
                (min(len(left[r]), len(right[r])) < KEY_TYPO_MIN_LENGTH for r in rows),
                dtype=bool,
                count=len(rows),
            )
            typo[rows[short]] = False
        part = np.where(dist == 0, 1.0, np.where(typo, partial, 0.0))
        if kind == "date":
            swapped = np.fromiter(
                (x[:4] + x[6:] + x[4:6] == y for x, y in zip(left, right, strict=True)),
                dtype=bool,
                count=len(left),
            )
            part = np.where(swapped & (part < 0.8), 0.8, part)
    else:
        part = cpdist(left, right, scorer=SCORERS[scorer], workers=-1).astype(float)
        part = part / (1.0 if scorer in SCORER_SCALE else 100.0)
    sim[present] = part
    return sim


def contribution_of(name: str, similarity: float | None) -> float:
    spec = FIELDS[name]
    if similarity is None or similarity != similarity:  # missing: no evidence
        return 0.0
    scaled = max(0.0, (similarity - spec.floor) / (1.0 - spec.floor))
    return round(spec.disagree + (spec.agree - spec.disagree) * scaled, 3)


def _contribution_column(name: str, sim: np.ndarray) -> np.ndarray:
    spec = FIELDS[name]
    scaled = np.clip((sim - spec.floor) / (1.0 - spec.floor), 0.0, None)
    contrib = spec.disagree + (spec.agree - spec.disagree) * scaled
    return np.where(np.isnan(sim), 0.0, np.round(contrib, 3))


# The strong fields and the similarity at which each still agrees "up to a typo": names at the
# fuzzy medium level, a birth date or customer number one keying slip apart (one edit, or day and
# month swapped; see ``_similarity_column``). E-mail, phone and user id are keyed by machines or
# chosen by the person: one character off is another identifier, so only equal ones agree.
TYPO_AGREEMENT: dict[str, float] = {
    "first_name": Method.LEVELS[Method.FUZZY_MEDIUM],
    "last_name": Method.LEVELS[Method.FUZZY_MEDIUM],
    "birth_date": 0.8,
    "customer_id": 0.6,
    "email": 1.0,
    "phone": 1.0,
    "user_id": 1.0,
}
TYPO_RULE = "Birth date and strong fields alike up to a typo each"


def typo_consistent(similarity: dict[str, np.ndarray]) -> np.ndarray:
    """Per pair: nothing but typos between them in the strong fields.

    The birth date is known on both sides and the same or one typo apart; at least two of first
    name, last name and customer number agree up to a typo; and no strong field known on both
    sides disagrees beyond a typo (``TYPO_AGREEMENT``). So a household (another birth date), a
    twin (another first name or customer number) or a shared phone never qualifies.
    """
    if "birth_date" not in similarity:
        return np.zeros(0 if not similarity else len(next(iter(similarity.values()))), bool)
    sims = {f: similarity[f] for f in TYPO_AGREEMENT if f in similarity}
    alike = {f: np.nan_to_num(sim, nan=0.0) >= TYPO_AGREEMENT[f] for f, sim in sims.items()}
    ok = alike["birth_date"].copy()
    for name, sim in sims.items():
        ok &= np.isnan(sim) | alike[name]
    names_and_number = ("first_name", "last_name", "customer_id")
    agreeing = sum(alike[f].astype(int) for f in names_and_number if f in alike)
    return ok & (agreeing >= 2)


@dataclass
class Scores:
    """Per pair: per-field similarity and contribution, total, first matching rule (or -1) and
    whether only typos separate the pair (``typo_consistent``)."""

    pairs: np.ndarray
    similarity: dict[str, np.ndarray]
    contribution: dict[str, np.ndarray]
    total: np.ndarray
    rule: np.ndarray
    typo: np.ndarray

    def automatic(self, spec: Spec) -> np.ndarray:
        """Per pair: merge automatically, guards permitting (a rule and the upper threshold, or
        a typo-consistent pair at the typo threshold)."""
        auto = (self.total >= spec.auto_threshold) & (self.rule >= 0)
        if spec.typo_threshold is not None:
            auto |= self.typo & (self.total >= spec.typo_threshold)
        return auto

    def rule_name(self, k: int, spec: Spec) -> str:
        """The first matching rule of pair ``k``, else the typo rule if it holds, else ''."""
        if self.rule[k] >= 0:
            return spec.rules[self.rule[k]].name
        return TYPO_RULE if self.typo[k] and spec.typo_threshold is not None else ""

    def explain(self, k: int) -> dict[str, dict[str, float | None]]:
        out = {}
        for name, sims in self.similarity.items():
            sim = sims[k]
            out[name] = {
                "similarity": None if sim != sim else round(float(sim), 3),
                "contribution": float(self.contribution[name][k]),
            }
        return out


def _criterion_mask(table: Table, pairs: np.ndarray, sims: dict, criterion: Criterion):
    i, j = pairs[:, 0], pairs[:, 1]
    name = criterion.field
    if criterion.method in (Method.EXACT, Method.EXACT_NORMALISED):
        column = table.raw[name] if criterion.method == Method.EXACT else table.norm[name]
        left, right = column[i], column[j]
        ok = (left == right) & (left != "")
        blank = (left == "") & (right == "")
    else:
        sim = sims[name]
        ok = np.nan_to_num(sim, nan=0.0) >= Method.LEVELS[criterion.method]
        blank = (table.norm[name][i] == "") & (table.norm[name][j] == "")
    if criterion.blank_matches_blank:
        ok = ok | blank
    return ok


def _names_swapped(table: Table, pairs: np.ndarray, spec: Spec, sims: dict, contribs: dict):
    """First and last name given the wrong way round: compare them crosswise as well.

    Where the crosswise similarity is better, it replaces the straight one (in place).
    """
    if "first_name" not in sims or "last_name" not in sims:
        return
    i, j = pairs[:, 0], pairs[:, 1]
    fn, ln = table.norm["first_name"], table.norm["last_name"]
    scorer = spec.scorer_for("first_name")
    # Only pairs whose straight names disagree somewhere can gain from the crosswise view.
    straight = np.nan_to_num(sims["first_name"]) + np.nan_to_num(sims["last_name"])
    rows = np.flatnonzero(straight < 1.8)
    if len(rows) == 0:
        return
    ii, jj = i[rows], j[rows]
    cross_a = _similarity_column("name", scorer, fn[ii], ln[jj])
    cross_b = _similarity_column("name", scorer, ln[ii], fn[jj])
    better = np.nan_to_num(cross_a) + np.nan_to_num(cross_b) > straight[rows] + 0.2
    if not better.any():
        return
    take = rows[better]
    for name, cross in (("first_name", cross_a), ("last_name", cross_b)):
        sims[name] = sims[name].copy()
        sims[name][take] = cross[better]
        contribs[name] = _contribution_column(name, sims[name])


def pairs_score(table: Table, pairs: np.ndarray, spec: Spec = DEFAULT_SPEC) -> Scores:
    """Score every candidate pair, vectorised per field (rapidfuzz cpdist on all cores)."""
    i, j = pairs[:, 0], pairs[:, 1]
    sims, contribs = {}, {}
    for name in spec.fields:
        column = table.norm[name]
        sims[name] = _similarity_column(
            FIELDS[name].kind, spec.scorer_for(name), column[i], column[j]
        )
        contribs[name] = _contribution_column(name, sims[name])
    _names_swapped(table, pairs, spec, sims, contribs)
    total = sum(contribs.values(), np.zeros(len(pairs)))
    rule = np.full(len(pairs), -1)
    for r, match_rule in reversed(list(enumerate(spec.rules))):
        mask = np.ones(len(pairs), dtype=bool)
        for criterion in match_rule.criteria:
            mask &= _criterion_mask(table, pairs, sims, criterion)
        rule = np.where(mask, r, rule)
    return Scores(pairs, sims, contribs, np.round(total, 3), rule, typo_consistent(sims))


# ---------------------------------------------------------------- guards


class DateRelation:
    """How two birth dates (YYYYMMDD) relate; see ``birth_date_relation``."""

    UNKNOWN = "unknown"  # one or both missing: no evidence either way
    SAME = "same"
    TYPO = "typo"  # one keying slip apart
    DIFFERENT = "different"  # two or more of year, month, day differ: another date


def birth_date_relation(a: str, b: str) -> str:
    """Classify two normalised birth dates (YYYYMMDD, '' = missing).

    A *typo* is what one slip at the keyboard or in a form does to a date: one digit changed
    or two neighbouring digits swapped (one edit, ``OSA`` distance 1), day and month given the
    wrong way round, or exactly one of year, month and day wrong while the other two agree
    (a lost or mistyped component). Anything else, i.e. two or more components differ, is a
    *different* date.
    """
    if not a or not b:
        return DateRelation.UNKNOWN
    if a == b:
        return DateRelation.SAME
    if OSA.distance(a, b) <= 1 or a[:4] + a[6:] + a[4:6] == b:
        return DateRelation.TYPO
    differing = (a[:4] != b[:4]) + (a[4:6] != b[4:6]) + (a[6:] != b[6:])
    return DateRelation.TYPO if differing == 1 else DateRelation.DIFFERENT


def birth_dates_conflict(a: str, b: str) -> bool:
    """Two known birth dates that no single typo explains (two or more components differ)."""
    return birth_date_relation(a, b) == DateRelation.DIFFERENT


def _names_compatible(a: dict[str, str], b: dict[str, str], *, level: float = 0.9) -> bool:
    """At least one name known on both sides, and every name known on both sides alike."""
    sim = JaroWinkler.normalized_similarity

    def fits(pairs):
        known = [(x, y) for x, y in pairs if x and y]
        return bool(known) and all(sim(x, y) >= level for x, y in known)

    fa, la, fb, lb = (r.get(f, "") for r in (a, b) for f in ("first_name", "last_name"))
    return fits([(fa, fb), (la, lb)]) or fits([(fa, lb), (la, fb)])


def _same_customer_number(a: dict[str, str], b: dict[str, str]) -> bool:
    """The same customer number, allowing one typo (the source system issues one per person)
    in a number long enough for one to be a typo (``KEY_TYPO_MIN_LENGTH``)."""
    x, y = a.get("customer_id", ""), b.get("customer_id", "")
    if not (x and y):
        return False
    return x == y or (min(len(x), len(y)) >= KEY_TYPO_MIN_LENGTH and OSA.distance(x, y) <= 1)


def birth_dates_block(a: dict[str, str], b: dict[str, str]) -> bool:
    """Whether the birth dates of two records keep them from an automatic merge.

    - a typo apart (see ``birth_date_relation``): only when no other strong evidence agrees,
      i.e. the full name (either order) does not agree;
    - different dates: unless the full name *and* the customer number agree (then the date is
      the error: a source system does not give two people one number and one name). A shared
      e-mail, phone or address never excuses a different date: households share them.
    """
    relation = birth_date_relation(a.get("birth_date", ""), b.get("birth_date", ""))
    if relation == DateRelation.TYPO:
        return not _names_compatible(a, b)
    if relation == DateRelation.DIFFERENT:
        return not (_names_compatible(a, b) and _same_customer_number(a, b))
    return False


def strong_conflicts(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """Reasons two records must not be merged automatically (they may still be suggested).

    Different user ids always conflict (one user id per person). Birth dates conflict as
    ``birth_dates_block`` says.
    """
    reasons = []
    if a.get("user_id") and b.get("user_id") and a["user_id"] != b["user_id"]:
        reasons.append("different user ids")
    if birth_dates_block(a, b):
        reasons.append("different birth dates")
    return reasons


# ---------------------------------------------------------------- decisions and clustering

AUTO, REVIEW, NONE = "auto", "review", "none"


def pair_key(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


@dataclass
class Decisions:
    """Clusters to merge (lists of ids) and pairs for review with their score and reasons."""

    merges: list[list[int]]
    suggestions: list[dict]
    blocked: int = 0


class _Clusters:
    """Union-find over row indexes that keeps each cluster's strong values and vetoes."""

    def __init__(self, table: Table, dnm: set[tuple[int, int]]) -> None:
        self.parent = list(range(len(table)))
        self.members = {k: [k] for k in range(len(table))}
        self.table = table
        self.dnm = dnm

    def find(self, k: int) -> int:
        root = k
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[k] != root:
            self.parent[k], k = root, self.parent[k]
        return root

    def veto(self, ra: int, rb: int) -> list[str]:
        """Why clusters ``ra`` and ``rb`` must not be joined automatically ([] = they may).

        Do-not-merge and user ids are checked between every two members. Birth dates are
        compared person to person: each birth date that one cluster would bring into the other
        (a date the other does not have yet) must be vouched for by at least one pair of
        records across the two, one holding that date, that ``birth_dates_block`` lets pass
        (a typo with agreeing names; another date with agreeing name and customer number).
        So one member with an odd name or date does not keep a whole cluster away from the
        rest of the same person, while two people with dates of their own stay apart. A cluster
        whose birth dates the other already holds brings no date of its own: the other's further
        dates were admitted among its own members, so they need no vouching from this one (else
        a record would be kept from its person only because the person's cluster already holds
        a typo of the date).
        """
        ids, sides = self.table.ids, (self.members[ra], self.members[rb])
        records = {k: self.table.record(k) for k in (*sides[0], *sides[1])}
        for x in sides[0]:
            for y in sides[1]:
                if pair_key(ids[x], ids[y]) in self.dnm:
                    return ["do not merge"]
        users = [{records[k]["user_id"] for k in side} - {""} for side in sides]
        if users[0] and users[1] and users[0] != users[1]:
            return ["different user ids"]
        dates = [{records[k]["birth_date"] for k in side} - {""} for side in sides]
        for own, theirs in ((0, 1), (1, 0)):
            if not dates[own] or dates[own] <= dates[theirs]:
                continue
            dated = [records[k] for k in sides[own] if records[k]["birth_date"]]
            for date in dates[theirs] - dates[own]:
                holders = [records[k] for k in sides[theirs] if records[k]["birth_date"] == date]
                if all(birth_dates_block(k, o) for k in dated for o in holders):
                    return ["different birth dates"]
        return []

    def union(self, ra: int, rb: int) -> None:
        keep, drop = (ra, rb) if ra < rb else (rb, ra)
        self.parent[drop] = keep
        self.members[keep].extend(self.members.pop(drop))


def decide(
    table: Table,
    scores: Scores,
    spec: Spec = DEFAULT_SPEC,
    *,
    do_not_merge: set[tuple[int, int]] = frozenset(),
) -> Decisions:
    """Turn scores into merges (clusters) and suggestions, honouring guards and do-not-merge.

    Automatic pairs are joined best first; a join is vetoed when any two members of the two
    clusters are a do-not-merge pair or conflict (user id, birth date), so a chain of good pairs
    cannot merge two people a steward or a guard kept apart. A vetoed pair is suggested instead.
    """
    clusters = _Clusters(table, set(do_not_merge))
    order = np.argsort(-scores.total, kind="stable")
    automatic = scores.automatic(spec)
    suggestions: list[dict] = []
    blocked = 0
    ids = table.ids
    for k in order:
        total = float(scores.total[k])
        if total < spec.review_threshold:
            break  # sorted best first: the rest are below the review band
        i, j = int(scores.pairs[k, 0]), int(scores.pairs[k, 1])
        if pair_key(ids[i], ids[j]) in clusters.dnm:
            continue
        ri, rj = clusters.find(i), clusters.find(j)
        if ri == rj:
            continue
        reasons: list[str] = []
        if automatic[k]:
            reasons = clusters.veto(ri, rj)
            if not reasons:
                clusters.union(ri, rj)
                continue
            if reasons == ["do not merge"]:
                continue
            blocked += 1
        if total >= spec.review_threshold:
            suggestions.append(
                {
                    "left": ids[i],
                    "right": ids[j],
                    "score": total,
                    "rule": scores.rule_name(k, spec),
                    "reasons": reasons,
                    "fields": scores.explain(k),
                }
            )
    merges = [
        sorted(ids[m] for m in members) for members in clusters.members.values() if len(members) > 1
    ]
    # A suggestion between two rows that ended in one cluster is already settled.
    settled = {ids[m]: root for root, members in clusters.members.items() for m in members}
    suggestions = [s for s in suggestions if settled[s["left"]] != settled[s["right"]]]
    return Decisions(merges=merges, suggestions=suggestions, blocked=blocked)
