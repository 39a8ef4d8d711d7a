"""`{{ finding.check|check_name }}`: a check's name in the reader's language. The content layer names its checks
in code ("grounding", "style"); the page shows what a reader calls them."""

from django import template
from django.utils.translation import pgettext_lazy

register = template.Library()

# The checks of generation/content (Finding.check, and the reasons in Job.rejections); one missing here shows
# under its code name.
CHECK_NAMES = {
    "grounding": pgettext_lazy("check", "grounding"),
    "style": pgettext_lazy("check", "style"),
    "chatter": pgettext_lazy("check", "chatter"),
    "language": pgettext_lazy("check", "language"),
    # Reasons a candidate was re-sampled (Job.rejections) beside the checks' own names.
    "contract": pgettext_lazy("check", "format"),
    "repeat": pgettext_lazy("check", "repeat"),
}


@register.filter
def check_name(check: str) -> str:
    return CHECK_NAMES.get(check, check)
