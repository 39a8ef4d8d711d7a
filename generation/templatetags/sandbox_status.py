"""`{% sandbox_notice %}`: where code checks cannot run here, the admin says so (and why) on the pages that
measure code: the index, datasets and experiments."""

from django import template
from django.utils.html import format_html

from generation import sandbox

register = template.Library()


@register.simple_tag
def sandbox_notice() -> str:
    ready, detail = sandbox.availability()
    if ready:
        return ""
    return format_html(
        '<ul class="messagelist"><li class="warning" id="sandbox-notice">Code checks are not run on this host: '
        "they need a sandbox ({}). Install bubblewrap (Debian package <code>bubblewrap</code>) and allow "
        "namespaces; until then code cases and jobs report “code checks need a sandbox”.</li></ul>",
        detail,
    )
