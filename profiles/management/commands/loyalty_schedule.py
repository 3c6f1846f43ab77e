"""Schedule the recurring loyalty jobs in django-q2 (idempotent: run it after every deploy)."""

from django.core.management.base import BaseCommand
from django_q.models import Schedule

SCHEDULES = {
    # name: (kind, schedule type, minutes)
    "loyalty: earn points from new events": ("earn", Schedule.MINUTES, 5),
    "loyalty: expire points": ("expire", Schedule.DAILY, None),
    "loyalty: evaluate tiers": ("tiers", Schedule.DAILY, None),
}


class Command(BaseCommand):
    help = "Create or update the django-q2 schedules of the loyalty jobs."

    def add_arguments(self, parser):
        parser.add_argument(
            "--earn-minutes", type=int, default=5, help="Minutes between earning runs."
        )

    def handle(self, *args, **options):
        for name, (kind, schedule_type, minutes) in SCHEDULES.items():
            if kind == "earn":
                minutes = options["earn_minutes"]
            _schedule, created = Schedule.objects.update_or_create(
                name=name,
                defaults={
                    "func": "profiles.loyalty_tasks.loyalty_scheduled",
                    "args": repr(kind),
                    "schedule_type": schedule_type,
                    "minutes": minutes,
                    "repeats": -1,
                },
            )
            self.stdout.write(f"{'created' if created else 'updated'}: {name}")
