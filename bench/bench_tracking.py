"""/v1/batch throughput through gunicorn with concurrent clients on loopback.

    .venv/bin/python bench/bench_tracking.py --events 100000 --clients 8 --batch 100 \\
        --workers 4 [--threads 1] [--keep-alive 2] [--pg postgres://postgres@127.0.0.1:5432] \\
        [--file var/bench/customers-100000/events.jsonl]

Creates a fresh PostgreSQL database, migrates it, creates an API source, starts gunicorn
(``cdp.wsgi``, DEBUG off) and sends the first ``--events`` lines of a bench/generate.py
events file as ``/v1/batch`` requests of ``--batch`` messages from ``--clients`` concurrent
keep-alive HTTP connections. The run is bounded: it stops when every batch is sent (or after
``--max-seconds``). Then it checks that every distinct messageId is stored exactly once (the
file holds about 1% exact retries, which must be deduplicated), prints one table and stops
gunicorn and drops the database. Below the table: CPU time per batch of the gunicorn
processes, of the PostgreSQL backends and of the client threads, and the load average: on a
shared machine these say more than the rate does.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def psql(pg: str, sql: str) -> None:
    subprocess.run(["psql", pg + "/postgres", "-qc", sql], check=True, capture_output=True)


def manage(env: dict, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (those that still exist)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def group_pids(pgid: int) -> list[int]:
    """The processes of a process group (gunicorn's master and workers)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


def db_pids(pg: str, name: str) -> list[int]:
    """The PostgreSQL backends connected to the bench database."""
    sql = f"SELECT pid FROM pg_stat_activity WHERE datname = '{name}'"
    out = subprocess.run(
        ["psql", pg + "/postgres", "-Atc", sql], check=True, capture_output=True, text=True
    )
    return [int(x) for x in out.stdout.split()]


def load_batches(path: Path, events: int, size: int) -> tuple[list[bytes], int, int]:
    """Pre-encoded batch bodies, the number of lines and of distinct messageIds in them."""
    batches, current, ids, lines = [], [], set(), 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if lines >= events:
                break
            message = json.loads(line)
            ids.add(message["messageId"])
            current.append(message)
            lines += 1
            if len(current) == size:
                batches.append(json.dumps({"batch": current}).encode())
                current = []
    if current:
        batches.append(json.dumps({"batch": current}).encode())
    return batches, lines, len(ids)


def client(port: int, auth: str, work: queue.Queue, stats: dict, lock, deadline: float) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json", "Authorization": auth}
    ok = errors = 0
    latencies = []
    while time.monotonic() < deadline:
        try:
            body = work.get_nowait()
        except queue.Empty:
            break
        start = time.perf_counter()
        try:
            conn.request("POST", "/v1/batch", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                ok += 1
            else:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        latencies.append(time.perf_counter() - start)
    conn.close()
    with lock:
        stats["ok"] += ok
        stats["errors"] += errors
        stats["latencies"].extend(latencies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="over 1: the gthread worker")
    parser.add_argument("--keep-alive", type=int, default=2, help="seconds (gthread only)")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="events sent first, untimed, then ANALYZE (what autovacuum does in a live system's "
        "first minute); the rate is of the rest",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="serve bench/tracking_floor.py: one raw INSERT per batch, the stack's ceiling",
    )
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument(
        "--file", type=Path, default=ROOT / "var/bench/customers-100000/events.jsonl"
    )
    args = parser.parse_args(argv)
    if not args.port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            args.port = probe.getsockname()[1]

    name = f"cdp_bench_tracking_{os.getpid()}"
    psql(args.pg, f'DROP DATABASE IF EXISTS "{name}"')
    psql(args.pg, f'CREATE DATABASE "{name}"')
    env = {
        **os.environ,
        "DATABASE_URL": f"{args.pg}/{name}",
        "DEBUG": "0",
        "SECRET_KEY": "bench-only",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CDP_VAR_DIR": str(ROOT / "var" / "bench"),
    }
    server = None
    try:
        manage(env, "migrate", "--verbosity", "0")
        out = manage(env, "create_source", "bench-web", "--kind", "api")
        key = out.split("Write key: ", 1)[1].strip()
        auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        batches, lines, distinct = load_batches(args.file, args.events, args.batch)
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "cdp.wsgi",
             "-w", str(args.workers), "--threads", str(args.threads),
             "--keep-alive", str(args.keep_alive),
             "-b", f"127.0.0.1:{args.port}", "--log-level", "warning", "--timeout", "120"],
            env={**env, "DJANGO_SETTINGS_MODULE": "bench.tracking_floor"} if args.floor else env,
            cwd=ROOT, start_new_session=True,
        )  # fmt: skip
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", args.port, timeout=2).request("GET", "/")
                break
            except OSError:
                time.sleep(0.2)
        stats = {"ok": 0, "errors": 0, "latencies": []}
        lock = threading.Lock()
        warm = -(-args.warmup // args.batch)  # batches, rounded up
        if warm:
            work: queue.Queue = queue.Queue()
            for body in batches[:warm]:
                work.put(body)
            client(args.port, auth, work, stats, lock, time.monotonic() + args.max_seconds)
            subprocess.run(["psql", f"{args.pg}/{name}", "-qc", "ANALYZE"], check=True)
            stats = {"ok": 0, "errors": 0, "latencies": []}
        timed_lines = lines - min(lines, warm * args.batch)
        work = queue.Queue()
        for body in batches[warm:]:
            work.put(body)
        web_cpu = -cpu_seconds(group_pids(server.pid))
        client_cpu = -time.process_time()
        start = time.perf_counter()
        deadline = time.monotonic() + args.max_seconds
        threads = [
            threading.Thread(target=client, args=(args.port, auth, work, stats, lock, deadline))
            for _ in range(args.clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - start
        client_cpu += time.process_time()
        web_cpu += cpu_seconds(group_pids(server.pid))
        # Backends connect at the first request and stay (CONN_MAX_AGE): all their CPU is
        # this run's, bar connection setup.
        db_cpu = cpu_seconds(db_pids(args.pg, name))
        sql = f"SELECT xact_rollback FROM pg_stat_database WHERE datname = '{name}'"
        rollbacks = subprocess.run(
            ["psql", args.pg + "/postgres", "-Atc", sql], capture_output=True, text=True
        ).stdout.strip()
        counts = manage(
            env,
            "shell",
            "-c",
            "from profiles.models import Event, RawRecord;"
            "from django.db.models import Count;"
            "dup = Event.objects.values('message_id').annotate(n=Count('id')).filter(n__gt=1);"
            "print('COUNTS', Event.objects.count(), RawRecord.objects.count(), dup.count())",
        )
        counts = next(x for x in counts.splitlines() if x.startswith("COUNTS")).split()[1:]
        events_stored, raws_stored, duplicated = (int(x) for x in counts)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        subprocess.run(["psql", args.pg + "/postgres", "-qc", drop], capture_output=True)
    if args.floor:  # raw messages only: no events
        events_stored = raws_stored
    latencies = sorted(stats["latencies"]) or [0.0]
    p50 = latencies[len(latencies) // 2] * 1000
    p95 = latencies[int(len(latencies) * 0.95)] * 1000
    sent = lines if not stats["errors"] and not work.qsize() else None
    header = (
        f"{'workers':>8}{'threads':>8}{'clients':>8}{'batch':>6}{'lines sent':>11}"
        f"{'distinct':>10}{'stored':>9}{'dups':>6}{'errors':>7}{'seconds':>9}"
        f"{'events/s':>10}{'p50 ms':>8}{'p95 ms':>8}"
    )
    row = (
        f"{args.workers:>8}{args.threads:>8}{args.clients:>8}{args.batch:>6}"
        f"{(sent if sent is not None else lines - work.qsize() * args.batch):>11,}"
        f"{distinct:>10,}{events_stored:>9,}{duplicated:>6}{stats['errors']:>7}{seconds:>9.1f}"
        f"{timed_lines / seconds:>10,.0f}{p50:>8.0f}{p95:>8.0f}"
    )
    print(header)
    print("-" * len(header))
    print(row)
    sent_batches = max(1, stats["ok"] + stats["errors"])
    print(
        f"cpu per batch: web {web_cpu / sent_batches * 1000:.1f} ms, "
        f"db {db_cpu / sent_batches * 1000:.1f} ms, "
        f"client {client_cpu / sent_batches * 1000:.1f} ms; "
        f"rolled back transactions {rollbacks}; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    exactly_once = events_stored == distinct == raws_stored and duplicated == 0
    print(f"every distinct event stored exactly once: {'yes' if exactly_once else 'NO'}")
    return 0 if exactly_once else 1


if __name__ == "__main__":
    raise SystemExit(main())
