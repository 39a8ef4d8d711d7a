import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from generation import services


class Command(BaseCommand):
    help = "Create the templates, versions and label positions of an export file. All or nothing."

    def add_arguments(self, parser):
        parser.add_argument("path")

    def handle(self, path, **options):
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from None
        try:
            counts = services.templates_import(data)
        except ValidationError as exc:
            raise CommandError(services.error_line(exc)) from None
        self.stdout.write(
            f"Imported {counts['templates']} templates, {counts['versions']} versions, moved {counts['labels']} labels."
        )
