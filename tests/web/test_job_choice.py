"""The studio under the chosen-candidate rule: a job with several candidates is not submitted without a choice
(the page says why), and a download carries the chosen candidates' final text."""

import pytest

from generation import services
from generation.models import Job, JobOutput, JobStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def headlines(user):
    job = services.job_create(user=user, kind="headline", inputs={"text": "A council votes for a bridge."})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    JobOutput.objects.bulk_create(
        JobOutput(job=job, index=i, text=t) for i, t in enumerate(["Amber Ruiz opens bridge", "Council backs bridge"])
    )
    return Job.objects.get(pk=job.pk)


def test_submitting_without_a_choice_is_refused_with_the_reason(client, user, headlines):
    client.force_login(user)
    page = client.post(f"/jobs/{headlines.pk}/review/", {"to_state": "in_review"}, follow=True).content.decode()
    assert "Choose the candidate to submit first" in page
    assert Job.objects.get(pk=headlines.pk).review_state == "draft"
    services.output_choose(headlines.outputs.get(index=1), user=user)
    client.post(f"/jobs/{headlines.pk}/review/", {"to_state": "in_review"})
    assert Job.objects.get(pk=headlines.pk).review_state == "in_review"


def test_a_download_carries_the_chosen_final_text(client, user, headlines):
    client.force_login(user)
    both = client.get(f"/jobs/{headlines.pk}/download.txt").content.decode()
    assert "Amber Ruiz" in both and "Council backs bridge" in both  # nothing chosen yet: every candidate
    output = headlines.outputs.get(index=1)
    services.output_choose(output, user=user)
    services.output_edit(output, user=user, text="Council backs Elm River bridge")
    chosen = client.get(f"/jobs/{headlines.pk}/download.txt").content.decode()
    assert "Council backs Elm River bridge" in chosen and "Amber Ruiz" not in chosen


def test_the_admin_cannot_change_a_choice(rf, chief, headlines):
    """The choice moves through the review verbs only (a reviewer's change is logged), never the admin."""
    from django.contrib import admin

    request = rf.get("/admin/")
    request.user = chief
    inline = next(i for i in admin.site._registry[Job].get_inline_instances(request, headlines) if i.model is JobOutput)
    assert "chosen" in inline.get_readonly_fields(request, headlines)
