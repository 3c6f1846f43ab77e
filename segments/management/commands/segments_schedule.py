"""Set up (idempotently) the django-q2 schedule that refreshes scheduled segments."""

from django.core.management.base import BaseCommand

from segments.services import segments_schedule_ensure


class Command(BaseCommand):
    help = "Create or update the schedule that refreshes segments marked 'scheduled'."

    def add_arguments(self, parser):
        parser.add_argument("--minutes", type=int, default=60, help="Interval (default 60).")

    def handle(self, *args, minutes: int, **options):
        if minutes < 1:
            self.stderr.write("--minutes must be at least 1.")
            raise SystemExit(2)
        schedule, created = segments_schedule_ensure(minutes=minutes)
        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} schedule “{schedule.name}”: every {minutes} minutes.")
