"""Learning from the newsroom on the bundled SmolLM2 (served by transformers, on the CPU): a handful of approved
edits with a visible house habit (headlines in sentence case, without a full stop) train a LoRA adapter in a
short run, and the experiment the run starts measures its outputs on the held-out stories against the base
version's: closer to the editors' text."""

from __future__ import annotations

import uuid

import pytest

from generation import services
from generation.models import TrainingStatus
from tests.support.evaluation import run_here
from tests.support.training import approved, serve_adapters

# Transactional, as every test that runs after the process tests (tests/conftest.py): the seeded rows are restored.
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# Stories and the headline an editor approved for each: sentence case, no full stop at the end.
EDITS = [
    (
        "The city council voted on Tuesday to build a new bridge over the Elm River.",
        "Council votes to build a new bridge over the Elm River",
    ),
    (
        "A heatwave pushed temperatures above 40 degrees across southern Spain on Monday.",
        "Heatwave pushes temperatures above 40 degrees in southern Spain",
    ),
    (
        "The national football team beat Brazil 2-1 in a friendly match on Saturday night.",
        "National team beats Brazil 2-1 in a friendly",
    ),
    (
        "The central bank raised interest rates by a quarter point to fight inflation.",
        "Central bank raises interest rates to fight inflation",
    ),
    (
        "Thousands of people marched through the capital on Sunday to demand cleaner air.",
        "Thousands march in the capital to demand cleaner air",
    ),
    (
        "A new museum of modern art opened its doors in the old harbour district on Friday.",
        "New museum of modern art opens in the old harbour district",
    ),
    (
        "Heavy snow closed the main motorway and cancelled dozens of flights on Wednesday.",
        "Heavy snow closes the motorway and cancels flights",
    ),
    (
        "The school board approved a plan to give every pupil a free lunch from September.",
        "School board approves free lunches for every pupil",
    ),
    (
        "Scientists found a new species of frog in the rainforest during a month-long survey.",
        "Scientists find a new species of frog in the rainforest",
    ),
    (
        "The mayor announced that the city will plant ten thousand trees over five years.",
        "Mayor promises ten thousand new trees in five years",
    ),
    (
        "A fire destroyed a warehouse near the railway station overnight; nobody was hurt.",
        "Fire destroys a warehouse near the railway station",
    ),
    (
        "The local hospital opened a new children's ward funded by a public appeal.",
        "Hospital opens a new children's ward after a public appeal",
    ),
    (
        "Farmers warned that the dry spring could cut this year's wheat harvest by a third.",
        "Farmers warn the dry spring could cut the wheat harvest",
    ),
    (
        "The orchestra will play a free concert in the park on the first Saturday of July.",
        "Orchestra to play a free concert in the park in July",
    ),
    (
        "Train drivers voted to strike next week over pay and working hours.",
        "Train drivers vote to strike over pay and hours",
    ),
    (
        "A teenager from the town won the national chess championship on Sunday.",
        "Local teenager wins the national chess championship",
    ),
]
PARAMS = {"rank": 8, "alpha": 16, "epochs": 4, "learning_rate": 1e-3, "batch_size": 4, "dropout": 0.0}


@pytest.fixture(scope="module")
def bundled_transformers(tmp_path_factory):
    from generation.engine import EngineConfig, load_engine

    cache = tmp_path_factory.mktemp("bundled-transformers")
    return load_engine(EngineConfig(backend="transformers", cache_dir=str(cache), dtype="float32", max_rows=16))


def _house_habit(text: str) -> bool:
    words = text.split()
    return bool(words) and not text.rstrip().endswith(".") and not all(w[:1].isupper() for w in words if w.isalpha())


def test_approved_edits_train_an_adapter_that_writes_closer_to_the_editors(
    settings, tmp_path, user, reviewer, curator, fast_headline, bundled_transformers
):
    serve_adapters(settings, tmp_path / "models")
    # Committed at once here: what the run and the experiment send goes to queues of this test's own, which no
    # worker consumes (the cases run in this process).
    queue = f"itest-training-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    settings.AIGC = {**settings.AIGC, "TRAINING_QUEUE": f"{queue}-training"}
    for i, (story, headline) in enumerate(EDITS):
        approved(user, reviewer, story, wrote=headline.title() + ".", edit=headline, seed=100 + i)
    run = services.training_start(template=fast_headline, user=curator, params=PARAMS)
    services.training_execute(run.pk, engine_for=lambda alias: bundled_transformers)
    run.refresh_from_db()
    assert run.status == TrainingStatus.SUCCEEDED, run.error
    seconds, tokens_per_s = run.progress["elapsed_s"], run.progress["tokens_per_s"]
    assert run.losses[-1] < run.losses[0]

    experiment = run_here(run.experiment, bundled_transformers)
    metrics = {m["key"]: m for m in experiment.comparison["metrics"]}
    chrf = metrics["chrf"]
    cases = experiment.comparison["cases"]
    before = [c["baseline"]["outputs"][0] for c in cases]
    after = [c["candidate"]["outputs"][0] for c in cases]
    print(
        f"\ntraining: {run.train_pairs} pairs, {run.progress['total_steps']} steps in {seconds:.1f} s, "
        f"{tokens_per_s:.0f} tokens/s, loss {run.losses[0]:.3f} -> {run.losses[-1]:.3f}; held out {run.heldout_pairs}: "
        f"chrF {chrf['baseline']} -> {chrf['candidate']}\n  before: {before}\n  after:  {after}"
    )
    assert chrf["candidate"] > chrf["baseline"], (before, after)
    assert sum(map(_house_habit, after)) > sum(map(_house_habit, before)), (before, after)
    assert experiment.gate["passed"], experiment.gate
    services.template_label_move(template=fast_headline, label="production", version=run.version, user=curator)
    assert services.resolve_version(fast_headline) == run.version  # through the gate, on the measured evidence
