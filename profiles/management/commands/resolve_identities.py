"""python manage.py resolve_identities [--ruleset NAME] [--dry-run] [--sync]"""

from django.core.management.base import BaseCommand, CommandError

from profiles.models import ResolutionRun, Ruleset
from profiles.services.resolution import report_lines, resolution_run_create


class Command(BaseCommand):
    help = "Run identity resolution (fuzzy matching) over all profiles, or dry-run a ruleset."

    def add_arguments(self, parser):
        parser.add_argument("--ruleset", help="Ruleset name (default: the active one).")
        parser.add_argument("--dry-run", action="store_true", help="Report only; change nothing.")
        parser.add_argument("--sync", action="store_true", help="Run here instead of a worker.")

    def handle(self, *args, ruleset=None, dry_run=False, sync=False, **options):
        if ruleset:
            chosen = Ruleset.objects.filter(name=ruleset).first()
            if chosen is None:
                names = ", ".join(Ruleset.objects.values_list("name", flat=True))
                raise CommandError(f"No ruleset named {ruleset!r}. Rulesets: {names}")
        else:
            chosen = Ruleset.objects.filter(is_active=True).first()
            if chosen is None:
                raise CommandError("No active ruleset; pass --ruleset NAME.")
        run = resolution_run_create(ruleset=chosen, dry_run=dry_run, sync=sync)
        if not sync:
            self.stdout.write(f"Queued resolution run #{run.pk}; a qcluster worker runs it.")
            return
        run = ResolutionRun.objects.get(pk=run.pk)
        if run.status != ResolutionRun.Status.SUCCEEDED:
            raise CommandError(f"Run #{run.pk} {run.status}: {run.error}")
        for line in report_lines(run.report):
            self.stdout.write(line)
