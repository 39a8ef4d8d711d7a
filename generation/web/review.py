"""The review loop's pages: the review queue (what waits, since when, with the author's note and the proposed
candidate) and a person's notices (newest first; opening one opens its job and marks it read)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from .. import selectors, services
from ..content import checks, formats
from ..content.prompts import InvalidInput
from ..models import ReviewState
from ..services.notifications import describe, job_label


@login_required
def review_queue(request):
    if not services.is_reviewer(request.user):
        raise Http404
    state = request.GET.get("state", ReviewState.IN_REVIEW)
    page = Paginator(selectors.review_queue(request.user, state), 20).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    for job in page.object_list:
        job.not_checked = not_checked(job)
        job.proposed = selectors.chosen_outputs(job)
    return render(
        request, "generation/review_queue.html", {"page": page, "state": state, "states": ReviewState.choices}
    )


def not_checked(job) -> str:
    """Why the checks could not judge a job's outputs ("" where they all could): the queue says "not checked"
    there, so that a job without findings is never read as cleared when no check could look at it."""
    try:
        rules = checks.parse(job.template_version.checks)
    except InvalidInput:
        rules = checks.parse(None)
    output_format = formats.spec(job.template_version.output_format)
    reasons = {
        "no_source": _("no source to check the claims against"),
        "source_language": _("the claim check does not read the source's language"),
        "code": _("code gets no text checks"),
    }
    return "; ".join(
        sorted({reasons[why] for why in checks.unjudged(rules, output_format, job.kind, job.inputs).values()})
    )


@login_required
def notifications(request):
    """The user's notices, newest first, each in the reader's language."""
    page = Paginator(selectors.notifications_for(request.user), 30).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    for notice in page.object_list:
        actor = notice.event.actor.get_username() if notice.event and notice.event.actor else ""
        note = notice.event.note if notice.event else ""
        notice.text = describe(notice.verb, actor=actor, job=job_label(notice.job), note=note)
    return render(request, "generation/notifications.html", {"page": page})


@login_required
@require_GET
def notification_open(request, notification_id: int):
    """Open a notice's job; that job's notices to this user are read from then on."""
    notice = get_object_or_404(selectors.notifications_for(request.user), pk=notification_id)
    services.notifications_read(request.user, job=notice.job)
    if selectors.job_for_page(request.user, notice.job_id) is None:  # withdrawn from review since, say
        messages.info(request, _("That job is no longer open to you."))
        return redirect("notifications")
    return redirect("job-detail", job_id=notice.job_id)


@login_required
@require_POST
def notifications_read(request):
    """Mark all read."""
    services.notifications_read(request.user)
    messages.success(request, _("All notices marked read."))
    return redirect("notifications")
