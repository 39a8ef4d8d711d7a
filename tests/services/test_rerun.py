"""Running a job again: a replay keeps the seed (the same text again), a regeneration draws a new one (new
candidates); both keep the template version, inputs, desk and budgets, link to the original, and are the owner's
to ask for."""

import pytest
from django.core.exceptions import PermissionDenied

from generation import services
from generation.content.prompts import MAX_SEED
from generation.models import Job
from generation.services.limits import LimitExceeded
from tests.support.desks import STORY, desk, join

pytestmark = pytest.mark.django_db


@pytest.fixture
def original(user):
    join(user, desk("sport"))
    return services.job_create(user=user, kind="headline", inputs={"text": STORY}, params={"n": 3, "seed": 7})


def test_a_replay_keeps_everything_and_links_back(user, original):
    again = services.job_rerun(original, user=user)
    assert again.rerun_of == original and again.params == original.params
    assert (again.inputs, again.template_version, again.desk) == (
        original.inputs,
        original.template_version,
        original.desk,
    )


def test_a_regeneration_draws_a_new_seed(user, original):
    seeds = set()
    for _ in range(3):
        again = services.job_regenerate(original, user=user)
        assert again.rerun_of == original and again.params["seed"] != 7
        assert 0 <= again.params["seed"] < MAX_SEED
        assert {k: v for k, v in again.params.items() if k != "seed"} == {
            k: v for k, v in original.params.items() if k != "seed"
        }
        seeds.add(again.params["seed"])
    assert len(seeds) == 3


def test_only_the_owner_runs_a_job_again(original, other_user):
    for verb in (services.job_rerun, services.job_regenerate):
        with pytest.raises(PermissionDenied):
            verb(original, user=other_user)
    assert Job.objects.count() == 1


def test_a_regeneration_is_held_against_the_desk_budget(user, original):
    sport = original.desk
    sport.tokens_per_day = original.reserved_tokens * 2 + original.reserved_tokens // 2
    sport.save()
    services.job_regenerate(original, user=user)
    with pytest.raises(LimitExceeded):
        services.job_regenerate(original, user=user)
    assert Job.objects.count() == 2
