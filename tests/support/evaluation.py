"""Small evaluation setups on the real model, shared by the service, API and command tests (its fixtures are
loaded for every test by tests/conftest.py)."""

import json
import os
from contextlib import contextmanager

import pytest
from django.contrib.auth.models import Group

from generation import selectors, services
from generation.models import Job, JobStatus, PromptTemplate, ReviewState


@contextmanager
def batch_invariant_models():
    """Worker and web processes started inside serve the bundled model with flash attention off: then a seeded
    case writes exactly the same text whatever it is batched beside (see tests/conftest.py gguf_engine), so a
    rerun of the same version measures exactly what its baseline measured. With llama.cpp's default ("auto")
    some cases write other text, and a comparison of a version with itself is left to sampling. For a module's
    module-scoped servers: enter it from a module-scoped autouse fixture, which starts before them."""
    saved = os.environ.get("AIGC_MODELS")
    os.environ["AIGC_MODELS"] = json.dumps({"default": {"flash_attn": "off"}})
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("AIGC_MODELS", None)
        else:
            os.environ["AIGC_MODELS"] = saved


STORIES = [
    "The city council voted on Tuesday to build a new bridge over the Elm River, at a cost of 40 million dollars.",
    "A heatwave pushed temperatures above 40 degrees Celsius across southern Spain on Monday, closing schools.",
    "The national football team beat Brazil 2-1 in a friendly match on Saturday night in front of 60,000 fans.",
]


@pytest.fixture
def reviewer(django_user_model):
    user = django_user_model.objects.create_user(username="reviewer", password="pw-reviewer-123")
    user.groups.add(Group.objects.get(name="reviewer"))
    return django_user_model.objects.get(pk=user.pk)


@pytest.fixture
def curator(django_user_model):
    return django_user_model.objects.create_user(username="curator", password="pw-curator-123", is_staff=True)


@pytest.fixture
def fast_headline(django_user_model):
    """The headline template with production on a version that writes 2 candidates of at most 16 tokens: the
    same contract and checks, a fraction of the default's time."""
    template = PromptTemplate.objects.get(slug="headline")
    base = services.resolve_version(template)
    content = {**base.content(), "default_params": {**base.default_params, "n": 2, "max_new_tokens": 16}}
    fast, _ = services.template_version_create(template=template, note="short", **content)
    services.template_label_move(template=template, label="production", version=fast)
    return template


def approved_job(user, reviewer, engine, text, *, edit=None):
    job = services.job_create(user=user, template="headline", inputs={"text": text})
    services.job_run(job.pk, engine=engine)
    job = Job.objects.get(pk=job.pk)
    assert job.status == JobStatus.SUCCEEDED, job.error
    if edit is not None:
        services.output_edit(job.outputs.get(index=0), user=user, text=edit)
    services.output_choose(job.outputs.get(index=0), user=user)
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)
    return services.review_move(Job.objects.get(pk=job.pk), user=reviewer, to_state=ReviewState.APPROVED)


def run_here(experiment, engine):
    services.experiment_run_here(experiment, engine_for=lambda alias: engine)
    return selectors.experiment_detail(experiment.pk)


def small_dataset(template, user, name="gate", n=2):
    cases = [{"inputs": {"text": s}, "seed": 100 + i} for i, s in enumerate(STORIES[:n])]
    return services.dataset_create(template=template, name=name, cases=cases, user=user)


def worse_version(template, user):
    """Two tokens per headline can never make the 3 words a headline needs: every case breaks the contract."""
    base = services.resolve_version(template)
    content = {**base.content(), "default_params": {**base.default_params, "max_new_tokens": 2}}
    return services.template_version_create(template=template, user=user, note="2-token headlines", **content)[0]


def equal_version(template, user):
    """The same prompt with another help text on its input: a new version that writes exactly the same."""
    base = services.resolve_version(template)
    variables = [{**base.variables[0], "help": "The story the headlines are for."}, *base.variables[1:]]
    content = {**base.content(), "variables": variables}
    return services.template_version_create(template=template, user=user, note="same prompt", **content)[0]
