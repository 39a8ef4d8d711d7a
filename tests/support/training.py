"""Approved jobs for training tests, written without a worker (the model's text as a worker would store it, the
editor's change, the review), and the adapter alias training needs (a pytest plugin: tests/conftest.py)."""

from __future__ import annotations

import pytest

from generation import services
from generation.models import Job, JobOutput, JobStatus, ReviewState


def approved(
    owner, reviewer, text: str, *, wrote: str, edit: str | None = None, kind: str = "headline", seed: int | None = None
) -> Job:
    """A job on `text` whose model output `wrote` was changed to `edit` (None: left as written), then approved;
    with `seed`, the job's seed (an evaluation case made of it replays the same)."""
    params = {"seed": seed} if seed is not None else None
    job = services.job_create(user=owner, kind=kind, inputs={"text": text}, params=params)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    JobOutput.objects.create(job=job, index=0, text=wrote)
    job.refresh_from_db()
    if edit is not None:
        services.output_edit(job.outputs.get(index=0), user=owner, text=edit)
    services.review_move(job, user=owner, to_state=ReviewState.IN_REVIEW)
    return services.review_move(Job.objects.get(pk=job.pk), user=reviewer, to_state=ReviewState.APPROVED)


def approved_choosing(owner, reviewer, text: str, *, wrote: list[str], choose: int, edit: str | None = None) -> Job:
    """A job on `text` whose model wrote the candidates `wrote`; the editor chose the one at `choose`, changed it
    to `edit` (None: left as written), and a reviewer approved it."""
    job = services.job_create(user=owner, kind="headline", inputs={"text": text})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    JobOutput.objects.bulk_create(JobOutput(job=job, index=i, text=t) for i, t in enumerate(wrote))
    job.refresh_from_db()
    services.output_choose(job.outputs.get(index=choose), user=owner)
    if edit is not None:
        services.output_edit(job.outputs.get(index=choose), user=owner, text=edit)
    services.review_move(job, user=owner, to_state=ReviewState.IN_REVIEW)
    return services.review_move(Job.objects.get(pk=job.pk), user=reviewer, to_state=ReviewState.APPROVED)


def serve_adapters(settings, cache_dir=None, **entry) -> dict:
    """Add the adapter alias ("tuned": the transformers backend) to the registry, and a model cache of the test's
    own; returns the registry."""
    models = {**settings.AIGC["MODELS"], "tuned": {"backend": "transformers", **entry}}
    cache = {"MODEL_CACHE_DIR": str(cache_dir)} if cache_dir else {}
    settings.AIGC = {**settings.AIGC, "MODELS": models, **cache}
    return models


@pytest.fixture
def tuned(settings, tmp_path):
    """An alias that serves adapters, as training needs, and a model cache of the test's own."""
    return serve_adapters(settings, tmp_path / "models")
