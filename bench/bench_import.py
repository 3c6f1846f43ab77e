"""CSV import benchmark: the whole pipeline against a landing-only baseline, side by side.

    .venv/bin/python bench/bench_import.py --n 100000 300000 [--db sqlite postgres] \\
        [--pg postgres://postgres@127.0.0.1:5432] [--data var/bench]

For each size N it generates N customers with bench/generate.py (once, reused), takes the
Shopify export (about 0.7 N rows) and, in a fresh database per run, measures in a child process:

- baseline: PostgreSQL ``COPY ... FROM STDIN (FORMAT csv, HEADER)`` of the file into one table
  of text columns; SQLite: one transaction of ``executemany`` INSERTs of the csv rows into one
  table of text columns;
- pipeline: ``import_run_execute`` on the same file (scan, land raw rows, map, upsert source
  records and identities, exact resolution, survivorship), as the django-q2 task runs it;
- peak RSS of each child (``ru_maxrss``), to show memory stays flat as N grows;
- a floor: the rate of only reading the file and normalising each row's e-mail and phone with
  ``cdp.normalize.identifier_key`` (no database), the least per-row work any pipeline that
  links people by e-mail and phone must do. When its ratio to the baseline is under the
  target, no pipeline on this machine and stack can meet the target.

Prints one table. Not part of the test run; numbers depend on the machine (say which).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def generate(n: int, data: Path) -> Path:
    out = data / f"customers-{n}"
    target = out / "shopify_customers.csv"
    if not target.exists():
        subprocess.run(
            [sys.executable, str(ROOT / "bench/generate.py"), "--customers", str(n),
             "--events", "1", "--seed", "42", "--out", str(out)],
            check=True,
        )  # fmt: skip
    return target


def child(args) -> None:
    """Runs in a fresh process with the database chosen by the environment."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    path = Path(args.file)
    if args.mode == "normalise":
        from cdp.normalize import IdentifierTypes, InvalidValue, identifier_key

        start = time.perf_counter()
        rows = 0
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                rows += 1
                with contextlib.suppress(InvalidValue):
                    identifier_key(IdentifierTypes.EMAIL, row["Email"])
                identifier_key(IdentifierTypes.PHONE, row["Phone"], region="US")
        seconds = time.perf_counter() - start
        print("RESULT " + json.dumps({"seconds": seconds, "rows": rows}))
        return
    call_command("migrate", verbosity=0)
    with path.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    columns = ", ".join(f'"c{i}" text' for i in range(len(header)))
    result = {}
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE bench_landing ({columns})")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if args.mode == "baseline":
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor, path.open("rb") as handle:
                sql = "COPY bench_landing FROM STDIN (FORMAT csv, HEADER true)"
                with cursor.cursor.copy(sql) as copy:
                    while chunk := handle.read(1 << 20):
                        copy.write(chunk)
            connection.commit() if not connection.get_autocommit() else None
        else:
            marks = ", ".join("?" for _ in header)
            raw = connection.connection
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle)
                next(reader)
                raw.execute("BEGIN")
                raw.executemany(f"INSERT INTO bench_landing VALUES ({marks})", reader)
                raw.execute("COMMIT")
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM bench_landing")
            rows = cursor.fetchone()[0]
    else:
        from django.core.files import File

        from profiles.models import DataSource, Identity, Profile, SourceRecord
        from profiles.services.imports import import_run_create

        source = DataSource.objects.create(name="shop", preset="shopify", default_region="US")
        with path.open("rb") as handle:
            run = import_run_create(source=source, file=File(handle, name=path.name), sync=True)
        assert run.status == "succeeded", run.error
        rows = run.rows_done
        result.update(
            created=run.created_count,
            rejected=run.rejected_count,
            profiles=Profile.objects.count(),
            records=SourceRecord.objects.count(),
            identities=Identity.objects.count(),
        )
    result.update(
        seconds=time.perf_counter() - start,
        rows=rows,
        max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        rss_before_mb=rss_before / 1024,
    )
    print("RESULT " + json.dumps(result))


def run_child(db: str, mode: str, file: Path, n: int, args) -> dict:
    env = {**os.environ}
    if db == "postgres":
        name = f"cdp_bench_import_{os.getpid()}"
        subprocess.run(["psql", args.pg + "/postgres", "-qc", f'DROP DATABASE IF EXISTS "{name}"'],
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run(["psql", args.pg + "/postgres", "-qc", f'CREATE DATABASE "{name}"'],
                       check=True, capture_output=True)  # fmt: skip
        env["DATABASE_URL"] = f"{args.pg}/{name}"
    else:
        var = args.data / f"sqlite-{n}-{mode}"
        shutil.rmtree(var, ignore_errors=True)
        var.mkdir(parents=True)
        env.pop("DATABASE_URL", None)
        env["CDP_VAR_DIR"] = str(var)
    env["CDP_MEDIA_ROOT"] = str(args.data / "media")
    # As in production: DEBUG off (DEBUG keeps the SQL of the last 9,000 queries in memory).
    env.update(DEBUG="0", SECRET_KEY="bench-only")
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--mode", mode, "--file", str(file)],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        sys.stderr.write(exc.stdout + exc.stderr)
        raise
    finally:
        if db == "postgres":
            drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            subprocess.run(["psql", args.pg + "/postgres", "-qc", drop], capture_output=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100000, 300000])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--data", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="pipeline", help=argparse.SUPPRESS)
    parser.add_argument("--file", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    args.data.mkdir(parents=True, exist_ok=True)
    header = (
        f"{'db':<9}{'customers':>10}{'rows':>9}{'baseline rows/s':>17}{'pipeline rows/s':>17}"
        f"{'ratio':>8}{'target':>8}{'pipeline s':>12}{'peak RSS MB':>13}{'profiles':>10}"
        f"{'normalise rows/s':>18}{'ratio':>8}"
    )
    lines = [header, "-" * len(header)]
    for n in args.n:
        file = generate(n, args.data)
        for db in args.db:
            base = run_child(db, "baseline", file, n, args)
            pipe = run_child(db, "pipeline", file, n, args)
            floor = run_child(db, "normalise", file, n, args)
            floor_rate = floor["rows"] / floor["seconds"]
            base_rate = base["rows"] / base["seconds"]
            pipe_rate = pipe["rows"] / pipe["seconds"]
            ratio = pipe_rate / base_rate
            lines.append(
                f"{db:<9}{n:>10,}{pipe['rows']:>9,}{base_rate:>17,.0f}{pipe_rate:>17,.0f}"
                f"{ratio:>8.3f}{'≥0.200':>8}{pipe['seconds']:>12.1f}{pipe['max_rss_mb']:>13.0f}"
                f"{pipe['profiles']:>10,}{floor_rate:>18,.0f}{floor_rate / base_rate:>8.3f}"
            )
            print(lines[-1], flush=True)
    print()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
