"""Create, update or remove the django-q2 schedules of activations (safe to run repeatedly)."""

from django.core.management.base import BaseCommand

from activation.services.schedules import activation_schedules_sync


class Command(BaseCommand):
    help = "Sync django-q2 schedules with hourly/daily activations (idempotent)."

    def handle(self, *args, **options):
        counts = activation_schedules_sync()
        self.stdout.write(", ".join(f"{k}: {v}" for k, v in counts.items()))
