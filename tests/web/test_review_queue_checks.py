"""The review queue's Checks column: the findings where there are some, "no findings" where the checks ran and
found nothing, and "not checked" where they could not judge (never a bare "none" a reviewer reads as cleared)."""

import html
import re

import pytest
from django.contrib.auth.models import Group

from generation import services
from generation.models import Job, JobOutput, JobStatus

pytestmark = pytest.mark.django_db

STORY = "The city council agreed on Tuesday to build a new bridge over the Elm River. It will cost $40 million."


@pytest.fixture
def queue(client, django_user_model):
    reviewer = django_user_model.objects.create_user(username="rev", password="pw-rev-123")
    reviewer.groups.add(Group.objects.get(name="reviewer"))
    client.force_login(reviewer)
    return client


def _submitted(user, kind, inputs, findings=0):
    job = services.job_create(user=user, kind=kind, inputs=inputs)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, findings=findings)
    JobOutput.objects.create(job=job, index=0, text="Council backs $40 million bridge")
    services.review_move(Job.objects.get(pk=job.pk), user=user, to_state="in_review")
    return job


def _checks_cell(page: str, job) -> str:
    row = re.search(rf'<tr><td><a href="/jobs/{job.pk}/">.*?</tr>', page, re.DOTALL).group()
    cells = re.findall(r"<td>(.*?)</td>", row, re.DOTALL)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cells[-1])).strip())


def test_the_checks_column_tells_clean_from_unchecked(queue, user):
    clean = _submitted(user, "headline", {"text": STORY})
    flagged = _submitted(user, "headline", {"text": STORY}, findings=2)
    sourceless = _submitted(user, "writing", {"topic": "cycling in the city"})
    unread = _submitted(user, "headline", {"text": "東京で新しい橋が開通した。費用は四十億円。"})
    page = queue.get("/review/").content.decode()
    assert _checks_cell(page, clean) == "no findings"
    assert _checks_cell(page, flagged) == "2 findings"
    assert _checks_cell(page, sourceless) == "not checked: no source to check the claims against"
    assert _checks_cell(page, unread) == "not checked: the claim check does not read the source's language"
    assert ">none<" not in page


def test_the_checks_column_in_chinese(queue, user):
    sourceless = _submitted(user, "writing", {"topic": "cycling in the city"})
    clean = _submitted(user, "headline", {"text": STORY})
    page = queue.get("/review/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert _checks_cell(page, sourceless) == "未检查：没有可核对说法的原文"
    assert _checks_cell(page, clean) == "未发现问题"


def test_the_job_page_says_what_was_not_checked_too(client, user):
    sourceless = _submitted(user, "writing", {"topic": "cycling in the city"})
    checked = _submitted(user, "headline", {"text": STORY})
    client.force_login(user)
    page = client.get(f"/jobs/{sourceless.pk}/").content.decode()
    assert '<p class="muted not-checked">Not checked: no source to check the claims against.</p>' in page
    assert "not-checked" not in client.get(f"/jobs/{checked.pk}/").content.decode()
