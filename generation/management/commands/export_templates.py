import json
import sys

from django.core.management.base import BaseCommand

from generation import services


class Command(BaseCommand):
    help = "Write templates with all their versions and labels as JSON (to review prompt changes in git)."

    def add_arguments(self, parser):
        parser.add_argument("slugs", nargs="*", help="Only these templates (default: all).")
        parser.add_argument("--output", "-o", help="A file to write (default: standard output).")

    def handle(self, slugs, output, **options):
        text = json.dumps(services.templates_export(slugs or None), indent=2, ensure_ascii=False) + "\n"
        if output:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text)
            self.stderr.write(f"Wrote {output}")
        else:
            sys.stdout.write(text)
