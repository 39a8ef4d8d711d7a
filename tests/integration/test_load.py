"""Load: 200 jobs posted at once through the real web server and run by two real workers, a fifth of them
cancelled at random moments, some while queued and some while running. Every job ends in a final state, each
once, on one worker, and the counts reconcile."""

import random
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from generation import services
from generation.models import Job, JobStatus
from tests.integration.conftest import log_tail

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

N_JOBS = 200
N_CANCELS = N_JOBS // 5
TEXT = (
    "The city council voted on Tuesday to extend the riverside cycle path by four kilometres. Work starts in "
    "March and should end before the summer festival; the cost is shared with the regional transport fund."
)
FINAL = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]


# On 2 cores the 200 jobs take 6 to 12 minutes, by CPU (measured: about 115 of them end in 8 minutes on a
# Sapphire Rapids VM, where llama.cpp runs without its repacked weights): the test's own deadline bounds it,
# and pytest's per-test timeout must not cut it first.
@pytest.mark.timeout(1500)
def test_200_jobs_over_two_workers_with_random_cancels_all_end_and_reconcile(cluster, user):
    workers = [cluster.worker(name, concurrency=8) for name in ("left", "right")]
    _web, url = cluster.web(AIGC_REQUESTS_PER_MINUTE=str(10 * N_JOBS))
    headers = {"Authorization": f"Bearer {services.api_key_create(user, name='load')[1]}"}

    def post(i: int) -> requests.Response:
        body = {"kind": "summary", "inputs": {"text": TEXT}, "params": {"max_new_tokens": 8, "seed": i}}
        return requests.post(f"{url}/api/v1/jobs/", json=body, headers=headers, timeout=120)

    def cancel(job_id: str) -> int:
        return requests.post(f"{url}/api/v1/jobs/{job_id}/cancel/", headers=headers, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(post, range(N_JOBS)))
    assert [r.status_code for r in responses] == [202] * N_JOBS, next(r.text for r in responses if r.status_code != 202)
    ids = [r.json()["id"] for r in responses]

    rng = random.Random(20261201)
    targets = rng.sample(ids, N_CANCELS)
    # Half are cancelled at once, most of them still queued; the other half at a random moment once running.
    answers = {job_id: cancel(job_id) for job_id in targets[: N_CANCELS // 2]}
    waiting, deadline = set(targets[N_CANCELS // 2 :]), time.monotonic() + 1380
    while waiting:
        assert time.monotonic() < deadline, log_tail(*workers)
        for job_id, status in Job.objects.filter(pk__in=waiting).values_list("pk", "status"):
            if status == JobStatus.RUNNING:
                time.sleep(rng.uniform(0, 0.2))
                answers[str(job_id)] = cancel(str(job_id))
            elif status in FINAL:
                answers[str(job_id)] = cancel(str(job_id))  # too late: ended before it was seen running
            else:
                continue
            waiting.discard(str(job_id))
        time.sleep(0.05)

    while Job.objects.filter(pk__in=ids).exclude(status__in=FINAL).exists():
        assert time.monotonic() < deadline, log_tail(*workers)
        time.sleep(1)
    # A job cancelled while it ran is final at once; its worker settles it (tokens, the text kept) moments later.
    unsettled = Job.objects.filter(pk__in=ids, status=JobStatus.CANCELLED, started_at__isnull=False)
    while unsettled.filter(prompt_tokens__isnull=True).exists():
        assert time.monotonic() < deadline, log_tail(*workers)
        time.sleep(0.5)

    jobs = {str(j.pk): j for j in Job.objects.filter(pk__in=ids).prefetch_related("outputs")}
    counts = Counter(j.status for j in jobs.values())
    assert counts[JobStatus.FAILED] == 0, [j.error for j in jobs.values() if j.error][:3]
    assert counts[JobStatus.SUCCEEDED] + counts[JobStatus.CANCELLED] == N_JOBS, counts
    # A cancel is accepted (200) exactly for the jobs that end cancelled; a refused one (409) came after the end.
    assert set(answers.values()) <= {200, 409}, answers
    assert {i for i, code in answers.items() if code == 200} == {
        i for i, j in jobs.items() if j.status == JobStatus.CANCELLED
    }
    cancelled_queued = [j for j in jobs.values() if j.status == JobStatus.CANCELLED and j.started_at is None]
    cancelled_running = [j for j in jobs.values() if j.status == JobStatus.CANCELLED and j.started_at is not None]
    assert cancelled_queued and cancelled_running, (len(cancelled_queued), len(cancelled_running))
    assert all(j.attempts == 0 and not j.outputs.all() for j in cancelled_queued)  # never ran: nothing written
    # One cancelled while running keeps what it wrote (cut short: "cancelled"), with what that cost it.
    for job in cancelled_running:
        kept = job.outputs.all()
        assert len(kept) <= 1 and all(o.text.strip() for o in kept), job.pk
        assert job.completion_tokens is not None, job.pk

    logs = [w.log_path.read_text() for w in workers]
    succeeded = [j for j in jobs.values() if j.status == JobStatus.SUCCEEDED]
    for job in succeeded:
        assert job.attempts == 1 and len(job.outputs.all()) == 1 and job.completion_tokens > 0, job.pk
        # Completed once, by one worker.
        assert sum(log.count(f"job {job.pk}: succeeded") for log in logs) == 1, job.pk
    for job in cancelled_queued:
        assert not any(f"job {job.pk}: running" in log for log in logs), job.pk
    served = [len(re.findall(r"job \S+: succeeded", log)) for log in logs]
    assert all(served) and sum(served) == len(succeeded), served

    assert services.reconcile_jobs() == {
        "requeued_running": 0,
        "resent_queued": 0,
        "evaluation_runs": 0,
        "training_runs": 0,
    }  # nothing stuck
    print(
        f"\nload: {dict(counts)}, cancelled queued {len(cancelled_queued)} / running {len(cancelled_running)}, "
        f"served per worker {served}"
    )
