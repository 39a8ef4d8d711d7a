"""Editor burden per template version, from real rows: each figure as selectors/burden.py defines it, versions
and templates kept apart, the `since` window, and a bounded number of queries."""

from datetime import timedelta

import pytest
from django.utils import timezone

from generation import selectors
from tests.support import burden_data
from tests.support.burden_data import OTHER, V1, V2, V3

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenario(user, reviewer):
    return burden_data.build(user, reviewer)


def strip(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "version_id"}


def approx(expected: dict) -> dict:
    return {k: pytest.approx(v) if isinstance(v, dict) else v for k, v in expected.items()}


def test_each_version_has_its_own_figures(scenario, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        rows = selectors.version_burden(template=scenario["template"])
    assert [strip(r) for r in rows] == [approx(V1), approx(V2), approx(V3)]
    assert [r["version_id"] for r in rows] == [scenario["v1"].pk, scenario["v2"].pk, scenario["v3"].pk]


def test_other_templates_are_not_mixed_in(scenario):
    rows = {(r["template"], r["version"]): strip(r) for r in selectors.version_burden()}
    assert rows[("burden-article", 1)] == approx(V1)
    assert rows[("burden-other", 1)] == approx(OTHER)


def test_by_version_ids(scenario):
    (row,) = selectors.version_burden(version_ids=[scenario["v2"].pk])
    assert strip(row) == approx(V2)


def test_since_keeps_recent_jobs_and_the_versions_that_have_them(scenario):
    rows = selectors.version_burden(since=timezone.now() - timedelta(days=30))
    assert {(r["template"], r["version"]) for r in rows} >= {("burden-article", 1), ("burden-article", 2)}
    assert ("burden-article", 3) not in {(r["template"], r["version"]) for r in rows}  # never ran
    assert "burden-other" not in {r["template"] for r in rows}  # its only job is 60 days old
    assert selectors.version_burden(template=scenario["other"], since=timezone.now() - timedelta(days=90))


def test_no_versions_no_queries_beyond_the_first(django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        assert selectors.version_burden(version_ids=[]) == []


def test_a_reviewer_changing_the_choice_is_no_review_decision(user, reviewer):
    """Only moves out of review are decisions: the logged change of a chosen candidate is not one."""
    from generation import services
    from generation.models import Job, JobOutput, JobStatus, ReviewState

    job = services.job_create(user=user, kind="headline", inputs={"text": "A council votes for a bridge."})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    JobOutput.objects.bulk_create(JobOutput(job=job, index=i, text=f"Headline {i}") for i in range(2))
    job = Job.objects.get(pk=job.pk)
    services.output_choose(job.outputs.get(index=0), user=user)
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)
    services.output_choose(job.outputs.get(index=1), user=reviewer)
    services.output_choose(job.outputs.get(index=0), user=reviewer, chosen=False)
    services.review_move(Job.objects.get(pk=job.pk), user=reviewer, to_state=ReviewState.DRAFT, note="Check it.")
    (row,) = selectors.version_burden(version_ids=[job.template_version_id])
    assert (row["review"]["decisions"], row["review"]["sent_back"], row["review"]["rejection_rate"]) == (1, 1, 1.0)
