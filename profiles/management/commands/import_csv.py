from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from profiles.constants import PRESETS
from profiles.models import DataSource
from profiles.services.imports import import_run_create


class Command(BaseCommand):
    help = (
        "Import a CSV file into an existing file source (or a new one with --create-source). "
        "Queued for the worker, or run here with --sync."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--source", required=True, help="Name of the data source.")
        parser.add_argument(
            "--create-source",
            action="store_true",
            help="Create the source if no source has this name (a typo is an error without it).",
        )
        parser.add_argument("--preset", choices=sorted(PRESETS), default="")
        parser.add_argument("--region", default="", help="Default phone region for a new source.")
        parser.add_argument("--sync", action="store_true", help="Run now instead of queueing.")
        parser.add_argument(
            "--encoding", default="", help="e.g. cp1252; default: detected (BOM, UTF-8, cp1252)."
        )
        parser.add_argument(
            "--delimiter", default="", help="One of , ; | or 'tab'; default: detected."
        )

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        source, created = self._source(options)
        if source.kind != DataSource.Kind.FILE:
            raise CommandError(f"Source {source.name!r} is an API source, not a file source.")
        if not created and options["preset"] and source.preset != options["preset"]:
            source.preset = options["preset"]
            source.save(update_fields=["preset"])
        with path.open("rb") as handle:
            run = import_run_create(
                source=source,
                file=File(handle, name=path.name),
                sync=options["sync"],
                encoding=options["encoding"],
                delimiter="\t" if options["delimiter"] == "tab" else options["delimiter"],
            )
        if not options["sync"]:
            self.stdout.write(f"Import #{run.pk} queued; a qcluster worker will run it.")
            return
        self.stdout.write(
            f"Import #{run.pk} {run.status}: read {run.rows_done}, created {run.created_count}, "
            f"updated {run.updated_count}, unchanged {run.unchanged_count}, "
            f"rejected {run.rejected_count}, suppressed {run.suppressed_count}."
        )
        if options["verbosity"] > 1:
            for reason, count in sorted((run.rejected_reasons or {}).items()):
                self.stdout.write(f"  rejected {reason}: {count}")
        if run.error:
            raise CommandError(run.error)

    def _source(self, options) -> tuple[DataSource, bool]:
        """The named source; a missing one is created only with --create-source."""
        name = options["source"]
        source = DataSource.objects.filter(name=name).first()
        if source is not None:
            return source, False
        if not options["create_source"]:
            known = DataSource.objects.filter(kind=DataSource.Kind.FILE).order_by("name")
            names = ", ".join(known.values_list("name", flat=True)) or "none"
            raise CommandError(
                f"No source named {name!r}. File sources: {names}. "
                "Give --create-source to create it."
            )
        source = DataSource.objects.create(
            name=name,
            kind=DataSource.Kind.FILE,
            preset=options["preset"],
            default_region=options["region"].upper(),
        )
        self.stdout.write(f"Created source {source.name} (id {source.pk}).")
        return source, True
