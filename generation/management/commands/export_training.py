import contextlib
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from generation import selectors
from generation.models import Desk


class Command(BaseCommand):
    help = (
        "Write a template's training pairs (the chat messages an approved job ran with and the approved final "
        "text) as JSONL in the chat format Hugging Face tools read, line by line; the held-out split is kept "
        "apart. One desk's work (the template's own, --desk, or the only desk with approved work) unless "
        "--all-desks mixes them."
    )

    def add_arguments(self, parser):
        parser.add_argument("template", help="The template's slug.")
        parser.add_argument("--desk", help="This desk's jobs (by slug).")
        parser.add_argument("--all-desks", action="store_true", help="Mix every desk's approved work.")
        parser.add_argument(
            "--split", choices=[*selectors.TRAINING_SPLITS, "all"], default="train", help="Which pairs (train)."
        )
        parser.add_argument(
            "--all-approved", action="store_true", help="Every approved job, not only those an editor changed."
        )
        parser.add_argument("--output", "-o", help="A file to write (default: standard output).")

    def handle(self, template, desk, all_desks, split, all_approved, output, **options):
        found = selectors.template_by_slug(template)
        if found is None:
            raise CommandError(f"No template {template!r}.")
        on = None
        if desk:
            on = Desk.objects.filter(slug=desk).first()
            if on is None:
                raise CommandError(f"No desk {desk!r}.")
        edited_only = not all_approved
        try:
            reading = selectors.source_desk(found, desk=on, all_desks=all_desks)
            refs = selectors.training_index(found, desk=reading, edited_only=edited_only)
            shares = selectors.desk_shares(refs)
            source = selectors.source_settle(found, shares, desk=reading, all_desks=all_desks)
        except ValidationError as exc:
            raise CommandError(" ".join(m for msgs in exc.message_dict.values() for m in msgs)) from None
        lines = selectors.training_lines(refs, None if split == "all" else split, edited_only=edited_only)
        with open(output, "w", encoding="utf-8") if output else contextlib.nullcontext(sys.stdout) as fh:
            for line in lines:
                fh.write(line)
        held = sum(p.split == selectors.TRAINING_HELD_OUT for p in refs)
        if source is not None:
            whose = f" of the {source.slug} desk's work"
        elif shares:
            whose = " of every desk's work (" + ", ".join(f"{slug}: {n}" for slug, n in shares.items()) + ")"
        else:
            whose = ""
        self.stderr.write(
            f"{len(refs)} pairs{whose} ({len(refs) - held} train, {held} held out); wrote the {split} split"
            + (f" to {output}" if output else "")
        )
