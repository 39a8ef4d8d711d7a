"""Write static/studio/pygments.css from generation.web.rendering.pygments_css().

The file is committed; run this again only when the highlight styles change (a test checks the two agree).
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from generation.web.rendering import pygments_css


class Command(BaseCommand):
    help = "Write the CSS for highlighted code (light and dark) to static/studio/pygments.css."

    def add_arguments(self, parser):
        default = settings.BASE_DIR / "static" / "studio" / "pygments.css"
        parser.add_argument("--output", "-o", type=Path, default=default, help=f"Default: {default}")

    def handle(self, output: Path, **options):
        output.write_text(pygments_css(), encoding="utf-8")
        self.stderr.write(f"Wrote {output}")
