"""Schedule insight runs in django-q2 (idempotent: run it on every deploy).

An incremental run every few minutes picks up what ingestion changed since the last run; a full
run each night refits the CLV models and the RFM cut points.
"""

from django.core.management.base import BaseCommand
from django_q.models import Schedule

SCHEDULES = {
    "insights: incremental": ("insights.tasks.insight_run_enqueue_incremental", Schedule.MINUTES),
    "insights: full (nightly)": ("insights.tasks.insight_run_enqueue_full", Schedule.DAILY),
}


class Command(BaseCommand):
    help = "Create or update the django-q2 schedules of insight runs."

    def add_arguments(self, parser):
        parser.add_argument("--minutes", type=int, default=5, help="Incremental run interval.")

    def handle(self, *args, minutes: int, **options):
        for name, (func, kind) in SCHEDULES.items():
            defaults = {"func": func, "schedule_type": kind, "repeats": -1}
            if kind == Schedule.MINUTES:
                defaults["minutes"] = minutes
            _, created = Schedule.objects.update_or_create(name=name, defaults=defaults)
            self.stdout.write(f"{'Created' if created else 'Updated'} schedule {name!r}.")
