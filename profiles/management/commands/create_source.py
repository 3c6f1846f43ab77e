from django.core.management.base import BaseCommand, CommandError

from profiles.constants import PRESETS
from profiles.models import DataSource


class Command(BaseCommand):
    help = "Create a data source; for --kind api, print its write key."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--kind", choices=DataSource.Kind.values, default=DataSource.Kind.FILE)
        parser.add_argument("--preset", choices=sorted(PRESETS), default="")
        parser.add_argument("--priority", type=int, default=100)
        parser.add_argument("--region", default="", help="Default phone region, e.g. US or DE.")

    def handle(self, *args, **options):
        if DataSource.objects.filter(name=options["name"]).exists():
            raise CommandError(f"A source named {options['name']!r} exists already.")
        source = DataSource.objects.create(
            name=options["name"],
            kind=options["kind"],
            preset=options["preset"],
            priority=options["priority"],
            default_region=options["region"].upper(),
        )
        self.stdout.write(f"Created source {source.name} (id {source.pk}, {source.kind}).")
        if source.write_key:
            self.stdout.write(f"Write key: {source.write_key}")
