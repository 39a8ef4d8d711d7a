"""A dataset from a CSV or JSONL file (the admin's upload, for datasets kept in git beside the templates):

    python manage.py import_dataset <template slug> <name> cases.jsonl [--description TEXT]

An existing name gets its next version. All or nothing: a bad case names its line and field.
"""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from generation import selectors, services
from generation.models import DatasetOrigin


class Command(BaseCommand):
    help = "Create a dataset (or its next version) for a template from a CSV or JSONL file of cases."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("name")
        parser.add_argument("path")
        parser.add_argument("--description", default="")

    def handle(self, slug, name, path, description, **options):
        template = selectors.template_by_slug(slug)
        if template is None:
            raise CommandError(f"No template {slug!r}.")
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from None
        try:
            cases = services.parse_upload(path, data)
            dataset = services.dataset_create(
                template=template, name=name, cases=cases, description=description, origin=DatasetOrigin.UPLOAD
            )
        except ValidationError as exc:
            raise CommandError(services.error_line(exc)) from None
        self.stdout.write(f"{dataset}: {dataset.items.count()} cases.")
