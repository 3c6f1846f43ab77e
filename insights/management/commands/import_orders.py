"""Import a Shopify orders export: manage.py import_orders --source "Shop orders" orders.csv"""

from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from insights.models import InsightRun
from insights.services.runs import insight_run_create
from profiles.models import DataSource
from profiles.services.orders import PRESET, orders_import


class Command(BaseCommand):
    help = "Import a Shopify orders export as Order Completed events, then refresh insights."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--source", required=True, help="Data source name (created if new).")
        parser.add_argument(
            "--sync", action="store_true", help="Refresh insights here, not in a worker."
        )

    def handle(self, *args, path, source, sync, **options):
        data_source, _ = DataSource.objects.get_or_create(
            name=source, defaults={"kind": DataSource.Kind.FILE, "preset": PRESET}
        )
        try:
            with open(path, "rb") as handle:
                run = orders_import(source=data_source, file=File(handle, name=Path(path).name))
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from None
        if run.status != run.Status.SUCCEEDED:
            raise CommandError(run.error)
        self.stdout.write(
            f"Import #{run.pk}: {run.rows_done} rows, {run.created_count} events created, "
            f"{run.updated_count} updated, {run.unchanged_count} unchanged, "
            f"{run.rejected_count} rows rejected, {run.suppressed_count} suppressed."
        )
        insight = insight_run_create(kind=InsightRun.Kind.INCREMENTAL, sync=sync)
        self.stdout.write(f"Insight run #{insight.pk}: {insight.get_status_display()}.")
