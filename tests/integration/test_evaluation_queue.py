"""An experiment's cases travel the normal path: evaluation jobs through Redis to a real Celery worker running
SmolLM2, sent a few at a time and advanced by the worker as each ends, with nothing left in anyone's history."""

import time

import pytest

from generation import selectors, services
from generation.models import Job, JobPurpose, JobStatus, UserQuota
from generation.services.evaluation import IN_FLIGHT
from tests.support.evaluation import STORIES, batch_invariant_models

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture(scope="module", autouse=True)
def _batch_invariant_worker():
    """The candidate's and the baseline's cases are batched beside each other in different ways: with flash
    attention off both write the same text for the same seed (tests/support/evaluation.py)."""
    with batch_invariant_models():
        yield


def test_an_experiment_runs_on_the_workers_a_few_cases_at_a_time(worker_queue, fast_headline, curator):
    UserQuota.objects.create(user=curator, tokens_per_day=10)  # evaluation jobs are not held against it
    cases = [{"inputs": {"text": s}, "seed": 7 + i} for i, s in enumerate(STORIES)]
    services.dataset_create(template=fast_headline, name="gate", cases=cases, user=curator)
    experiment = services.experiment_start(
        template=fast_headline, user=curator, label="production", dataset="gate", reuse_baseline=False
    )
    deadline = time.monotonic() + 300
    while (experiment := selectors.experiment_detail(experiment.pk)).finished_at is None:
        assert time.monotonic() < deadline, selectors.experiment_report(experiment)
        time.sleep(0.5)

    report = selectors.experiment_report(experiment)
    assert report["candidate"]["measured"] == report["baseline"]["measured"] == 3
    assert report["comparison"]["identical_cases"] == 3 and report["gate"]["passed"]  # same version, same seeds
    for run in (experiment.candidate, experiment.baseline):
        jobs = list(Job.objects.filter(evaluation__run=run).order_by("created_at"))
        assert len(jobs) == 3 and all(
            j.status == JobStatus.SUCCEEDED and j.purpose == JobPurpose.EVALUATION for j in jobs
        )
        for job in jobs:  # when each was created, at most IN_FLIGHT of its run were unfinished, itself included
            unfinished = [j for j in jobs if j.created_at <= job.created_at and j.finished_at > job.created_at]
            assert len(unfinished) <= IN_FLIGHT
    assert not selectors.jobs_visible_to(curator).exists()
