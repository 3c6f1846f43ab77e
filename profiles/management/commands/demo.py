"""Load the demo data (and optionally serve the admin with a worker): `python manage.py demo`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files import File
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from profiles.models import DataSource, Event, Profile, SourceRecord
from profiles.services.imports import import_run_create
from profiles.services.tracking import tracking_messages_ingest

PROJECT_DIR = Path(__file__).resolve().parents[3]
DEMO_DIR = PROJECT_DIR / "profiles" / "demo_data"
DEMO_PASSWORD = os.environ.get("CDP_DEMO_PASSWORD", "cdp-demo")
DEMO_USERS = {
    "admin": None,
    "engineer": "Data Engineer",
    "steward": "Data Steward",
    "marketer": "Marketer",
    "privacy": "Privacy Officer",
}


class Command(BaseCommand):
    help = (
        "Migrate, create demo users and sources, load the demo customers and events and "
        "compute insights once (idempotent). With --serve, also start a qcluster worker "
        "and the web server."
    )

    def add_arguments(self, parser):
        parser.add_argument("--serve", action="store_true", help="Serve the admin afterwards.")
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        self._users()
        shopify, _ = DataSource.objects.get_or_create(
            name="Shopify",
            defaults={"preset": "shopify", "priority": 10, "default_region": "US"},
        )
        crm, _ = DataSource.objects.get_or_create(
            name="CRM", defaults={"priority": 20, "default_region": "US"}
        )
        website, _ = DataSource.objects.get_or_create(
            name="Website", defaults={"kind": DataSource.Kind.API, "priority": 30}
        )
        changed = 0
        for source, filename in ((shopify, "shopify_customers.csv"), (crm, "crm_contacts.csv")):
            with (DEMO_DIR / filename).open("rb") as handle:
                run = import_run_create(source=source, file=File(handle, filename), sync=True)
            changed += run.created_count + run.updated_count
            self.stdout.write(
                f"{filename}: read {run.rows_done}, created {run.created_count}, "
                f"updated {run.updated_count}, unchanged {run.unchanged_count}, "
                f"rejected {run.rejected_count}"
            )
        accepted = duplicates = 0
        for batch in _jsonl_batches(DEMO_DIR / "events.jsonl", 500):
            with transaction.atomic():
                result = tracking_messages_ingest(source=website, messages=batch)
            accepted += result["accepted"]
            duplicates += result["duplicates"]
        self.stdout.write(f"events.jsonl: stored {accepted}, already stored {duplicates}")
        self._insights(changed=bool(changed or accepted))
        # Later changes (imports, events, merges) reach insights through the worker, as in
        # production: the incremental run every 5 minutes and the nightly full run.
        call_command("insights_schedule", stdout=self.stdout)
        self.stdout.write(
            f"Now: {Profile.objects.count()} profiles from {SourceRecord.objects.count()} "
            f"source records, {Event.objects.count()} events."
        )
        self.stdout.write(f"Website write key: {website.write_key}")
        if options["serve"]:
            self._serve(options["addr"])

    def _insights(self, *, changed: bool) -> None:
        """One full insight run, inline, so RFM, CLV and the 360 page have values at once;
        skipped when the load changed nothing and a full run has already succeeded."""
        from insights.models import InsightRun, ProfileInsight
        from insights.services.runs import insight_run_create

        done = InsightRun.objects.filter(
            kind=InsightRun.Kind.FULL, status=InsightRun.Status.SUCCEEDED
        ).exists()
        if done and not changed:
            self.stdout.write("Insights: unchanged data, already computed.")
            return
        run = insight_run_create(kind=InsightRun.Kind.FULL, sync=True)
        self.stdout.write(
            f"Insights: full run #{run.pk} {run.status}, "
            f"{ProfileInsight.objects.count()} profiles computed."
        )

    def _users(self) -> None:
        User = get_user_model()
        for username, role in DEMO_USERS.items():
            user, _ = User.objects.get_or_create(username=username)
            user.is_staff = True
            user.is_superuser = role is None
            user.set_password(DEMO_PASSWORD)
            user.save()
            if role:
                user.groups.set([Group.objects.get(name=role)])

    def _serve(self, addr: str) -> None:
        host_port = addr if ":" in addr else f"127.0.0.1:{addr}"
        self.stdout.write(
            self.style.SUCCESS(
                f"\nOpen http://{host_port}/admin/ and log in as admin / {DEMO_PASSWORD}\n"
                f"(also engineer, steward, marketer, privacy with the same password).\n"
                "A qcluster worker runs background jobs. Stop with Ctrl+C.\n"
            )
        )
        serve(host_port)


def serve(host_port: str, *, worker_grace: float = 15) -> None:
    """The development server with one qcluster worker beside it.

    Ctrl+C or SIGTERM stops both: the worker gets SIGTERM and ``worker_grace`` seconds to
    finish, then is killed (without the handler a SIGTERM ended this process at once and left
    the worker running).
    """
    worker = subprocess.Popen([sys.executable, str(PROJECT_DIR / "manage.py"), "qcluster"])
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        call_command("runserver", host_port, use_reloader=False)
    finally:
        signal.signal(signal.SIGTERM, previous)
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=worker_grace)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _exit_on_signal(signum, frame) -> None:
    raise SystemExit(0)


def _jsonl_batches(path: Path, size: int):
    batch = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                batch.append(json.loads(line))
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch
