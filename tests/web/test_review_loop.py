"""The review loop in the studio: counts in the nav (in text, with an aria-label), the notices page and marking
read, the review queue's columns read in a fixed number of queries, and a reviewer's fix of a typo in review."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from generation import services
from generation.models import Job, JobOutput, JobStatus, Notification, ReviewEvent, ReviewState
from tests.support.desks import STORY, desk_with_reviewer

pytestmark = pytest.mark.django_db


@pytest.fixture
def chief(user, django_user_model):
    """The editor and a reviewer on the sport desk."""
    return desk_with_reviewer(user, django_user_model)


def finished(owner, candidates=("Council backs a brigde",), text=STORY) -> Job:
    job = services.job_create(user=owner, kind="headline", inputs={"text": text})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    for i, candidate in enumerate(candidates):
        JobOutput.objects.create(job=job, index=i, text=candidate, chosen=len(candidates) == 1 or i == 1)
    return Job.objects.get(pk=job.pk)


def nav(client) -> str:
    return re.search(r'<nav aria-label="Main">.*?</nav>', client.get("/jobs/").content.decode(), re.DOTALL).group()


def test_the_nav_counts_what_waits_for_each_person(client, user, chief):
    job = finished(user)
    client.force_login(chief)
    assert "Review</a>" in nav(client) and "Notices</a>" in nav(client)  # nothing waits: no count
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)
    bar = nav(client)
    assert 'aria-label="Review (1 job waiting)">Review <span class="count">(1)</span></a>' in bar
    assert 'aria-label="Notices (1 unread)">Notices <span class="count">(1)</span></a>' in bar
    services.review_move(job, user=chief, to_state=ReviewState.DRAFT, note="Name the cost.")
    assert "Review</a>" in nav(client) and "Notices</a>" in nav(client)  # sent back: nothing waits for them
    client.force_login(user)
    bar = nav(client)
    assert 'aria-label="My jobs (1 sent back or approved)">My jobs <span class="count">(1)</span></a>' in bar
    assert 'Notices <span class="count">(1)</span>' in bar and "Review" not in bar  # an editor reviews nothing


def test_the_nav_counts_in_chinese(client, user, chief):
    services.review_move(finished(user), user=user, to_state=ReviewState.IN_REVIEW)
    client.force_login(chief)
    page = client.get("/jobs/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert 'aria-label="审核（1 个任务待审）">审核 <span class="count">(1)</span>' in page


def test_a_notice_opens_its_job_and_is_read_from_then_on(client, user, chief):
    job = finished(user, text="Mayor <script>alert(1)</script> opens the Elm River bridge")
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW, note="Check <i>the</i> name")
    services.review_move(job, user=chief, to_state=ReviewState.APPROVED)
    client.force_login(user)
    page = client.get("/notices/").content.decode()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "sport-chief approved “Mayor &lt;script&gt;" in page
    notice = Notification.objects.get(user=user)
    assert f'href="/notices/{notice.pk}/"' in page
    response = client.get(f"/notices/{notice.pk}/")
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert Notification.objects.get(pk=notice.pk).read_at is not None
    assert "(1)" not in nav(client)
    client.force_login(chief)
    assert client.get(f"/notices/{notice.pk}/").status_code == 404  # another user's notice


def test_the_notices_page_lists_newest_first_and_marks_all_read(client, user, chief):
    first, second = finished(user, text="First story about a bridge"), finished(user, text="Second story, a tunnel")
    for job in (first, second):
        services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)
    client.force_login(chief)
    page = client.get("/notices/").content.decode()
    assert page.index("Second story") < page.index("First story") and page.count(">unread<") == 2
    assert client.get("/notices/read/").status_code == 405  # a change is a POST
    response = client.post("/notices/read/", follow=True)
    assert "All notices marked read." in response.content.decode() and ">unread<" not in response.content.decode()
    assert not Notification.objects.filter(user=chief, read_at__isnull=True).exists()
    # The notice of a job withdrawn since: read, and the page says so instead of a 404.
    services.review_move(first, user=user, to_state=ReviewState.DRAFT)
    notice = Notification.objects.get(user=chief, job=first)
    page = client.get(f"/notices/{notice.pk}/", follow=True).content.decode()
    assert "That job is no longer open to you." in page


def test_the_queue_shows_submitted_note_proposed_candidate_and_desk(client, user, chief):
    job = finished(user, ["Council backs a bridge", "Elm River bridge <b>approved</b>"])
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW, note="The second, tightened.")
    submitted = ReviewEvent.objects.get().created_at
    client.force_login(chief)
    page = client.get("/review/").content.decode()
    row = re.search(rf'<tr><td><a href="/jobs/{job.pk}/">.*?</tr>', page, re.DOTALL).group()
    cells = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c)).strip() for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
    assert cells[0] == submitted.strftime("%Y-%m-%d %H:%M")
    assert cells[1:3] == ["editor", "Sport"]
    assert cells[4] == "Elm River bridge &lt;b&gt;approved&lt;/b&gt;"  # the chosen one, escaped
    assert cells[5] == "The second, tightened."
    assert cells[6] == "no findings"
    for heading in ("Submitted", "Desk", "Proposed", "Author's note", "Checks"):
        assert f"<th>{heading}</th>" in page


def test_the_queue_reads_in_a_fixed_number_of_queries(client, user, chief, django_assert_max_num_queries):
    client.force_login(chief)

    def submit():
        job = finished(user, ["One", "Two", "Three"])
        services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW, note="note")

    submit()
    with CaptureQueriesContext(connection) as one:
        assert client.get("/review/").status_code == 200
    for _ in range(5):
        submit()
    with django_assert_max_num_queries(len(one)):
        page = client.get("/review/").content.decode()
    assert page.count("<tr><td>") == 6


def test_a_reviewer_fixes_a_typo_from_the_page(client, user, chief):
    job = finished(user)
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)
    client.force_login(chief)
    assert f"/jobs/{job.pk}/outputs/0/edit/" in client.get(f"/jobs/{job.pk}/").content.decode()
    form = client.get(f"/jobs/{job.pk}/outputs/0/edit/").content.decode()
    assert "the edit is logged and its author is told" in form
    response = client.post(f"/jobs/{job.pk}/outputs/0/edit/", {"text": "Council backs a bridge"})
    assert response.status_code == 302
    output = JobOutput.objects.get(job=job)
    assert output.final_text == "Council backs a bridge" and output.edited_at is not None
    assert ReviewEvent.objects.latest("created_at").note == "Edited candidate 1."
    assert Notification.objects.get(user=user).verb == "edited"
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "<del>" in page and "<ins>" in page  # the diff against the model's text, as for the owner's edits
    # The owner waits for the review; once approved, nobody edits.
    client.force_login(user)
    client.post(f"/jobs/{job.pk}/outputs/0/edit/", {"text": "Owner's late change"})
    services.review_move(job, user=chief, to_state=ReviewState.APPROVED)
    client.force_login(chief)
    page = client.post(f"/jobs/{job.pk}/outputs/0/edit/", {"text": "After approval"}, follow=True).content.decode()
    assert "An approved job is not edited: reopen it first." in page
    assert JobOutput.objects.get(job=job).final_text == "Council backs a bridge"


def test_opening_the_job_itself_reads_its_notices_and_no_one_elses(client, user, chief):
    job, other = finished(user), finished(user, text="The harbour reopens on Monday after the storm.")
    for one in (job, other):
        services.review_move(one, user=user, to_state=ReviewState.IN_REVIEW)
        services.review_move(one, user=chief, to_state=ReviewState.APPROVED)
    client.force_login(user)
    assert 'Notices <span class="count">(2)</span>' in nav(client)
    assert client.get(f"/jobs/{job.pk}/").status_code == 200
    assert list(Notification.objects.filter(user=user, read_at=None).values_list("job_id", flat=True)) == [other.pk]
    assert 'Notices <span class="count">(1)</span>' in nav(client)
