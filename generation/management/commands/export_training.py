import sys

from django.core.management.base import BaseCommand, CommandError

from generation import selectors
from generation.models import Desk


class Command(BaseCommand):
    help = (
        "Write a template's training pairs (the chat messages an approved job ran with and the approved final "
        "text) as JSONL in the chat format Hugging Face tools read; the held-out split is kept apart."
    )

    def add_arguments(self, parser):
        parser.add_argument("template", help="The template's slug.")
        parser.add_argument("--desk", help="Only this desk's jobs (by slug).")
        parser.add_argument(
            "--split", choices=[*selectors.TRAINING_SPLITS, "all"], default="train", help="Which pairs (train)."
        )
        parser.add_argument(
            "--all-approved", action="store_true", help="Every approved job, not only those an editor changed."
        )
        parser.add_argument("--output", "-o", help="A file to write (default: standard output).")

    def handle(self, template, desk, split, all_approved, output, **options):
        found = selectors.template_by_slug(template)
        if found is None:
            raise CommandError(f"No template {template!r}.")
        on = None
        if desk:
            on = Desk.objects.filter(slug=desk).first()
            if on is None:
                raise CommandError(f"No desk {desk!r}.")
        pairs = selectors.training_pairs(found, desk=on, edited_only=not all_approved)
        text = selectors.training_jsonl(pairs, None if split == "all" else split)
        if output:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text)
        else:
            sys.stdout.write(text)
        held = sum(p.split == selectors.TRAINING_HELD_OUT for p in pairs)
        self.stderr.write(
            f"{len(pairs)} pairs ({len(pairs) - held} train, {held} held out); wrote the {split} split"
            + (f" to {output}" if output else "")
        )
