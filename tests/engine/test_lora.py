"""LoRA adapters on the tiny random Llama: training learns from approved answers without touching the served
model, a saved adapter serves exactly what was trained, an interrupted run resumes to the same adapter, and one
running batch serves several adapters and the base, each row as it would be served alone."""

import copy
import itertools
import json
import shutil
from pathlib import Path

import peft
import pytest
import torch
from safetensors.torch import load_file

from generation.engine import EngineConfig, EngineError, GenerationRequest, load_engine, lora
from generation.engine.remote import RemoteEngine
from tests.engine.test_batching import DeviceMemory, run_in_one_admission

TOPICS = ["bridge", "council", "river", "spring", "business", "headline"]
HABIT = " Thanks for reading."
# Answers that all end the same way: the habit an adapter should pick up.
EXAMPLES = [
    lora.Example([{"role": "user", "content": f"Write about the {w}."}], f"The {w} is in the news.{HABIT}")
    for w in TOPICS
]
TOO_LONG = lora.Example([{"role": "user", "content": "Summarise the following text. " * 20}], "Too long.")
# 6 examples that fit, 2 per batch: 3 steps per epoch, 18 in all; a checkpoint every 5 steps.
PARAMS = lora.LoraParams(
    rank=8, alpha=16, learning_rate=5e-3, epochs=6, batch_size=2, max_length=64, seed=3, checkpoint_every=5
)
PROBE = [{"role": "user", "content": "Write about the city."}]


def fresh_engine(model_dir, tmp_path_factory):
    """An engine of its own: attaching adapters changes the engine's model, which the shared one must not see."""
    return load_engine(
        EngineConfig(model_path=str(model_dir), cache_dir=str(tmp_path_factory.mktemp("cache")), dtype="float32")
    )


def probe_ids(engine):
    return torch.tensor([engine.encode_chat(PROBE)])


def logits(model, ids, **kw):
    with torch.no_grad():
        return model(input_ids=ids, **kw).logits.float()


@pytest.fixture(scope="module")
def trainer(tiny_model_dir, tmp_path_factory):
    return fresh_engine(tiny_model_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def habit(trainer, tmp_path_factory):
    """One uninterrupted training run; its in-memory peft model is kept to compare the saved adapter with."""
    made, reports = [], []
    real = peft.get_peft_model

    def keep(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    ids = probe_ids(trainer)
    before = logits(trainer.model, ids)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(peft, "get_peft_model", keep)
        result = lora.train(
            trainer,
            [*EXAMPLES, TOO_LONG],
            PARAMS,
            out_dir=tmp_path_factory.mktemp("habit"),
            base_sha256=trainer.weights_sha256,
            progress=reports.append,
        )
    after = logits(trainer.model, ids)
    return {"result": result, "model": made[0], "reports": reports, "before": before, "after": after}


@pytest.fixture(scope="module")
def noise_adapter(tiny_model_dir, tmp_path_factory):
    """An adapter with random non-zero B matrices (peft's default makes them zero): it visibly changes output."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(11)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    config = peft.LoraConfig(
        task_type="CAUSAL_LM",
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj", "down_proj"],
        init_lora_weights=False,
    )
    folder = tmp_path_factory.mktemp("noise")
    peft.get_peft_model(base, config).save_pretrained(folder)
    return folder


# --- training --------------------------------------------------------------------------------------------------


def test_training_reduces_the_loss_and_reports_each_step(habit, trainer):
    result, reports = habit["result"], habit["reports"]
    assert (result.steps, result.examples, result.skipped) == (18, 6, 1)
    assert len(result.losses) == 18 and result.first_loss == result.losses[0] and result.last_loss == result.losses[-1]
    last_epoch = sum(result.losses[-3:]) / 3
    assert last_epoch < result.first_loss - 0.4, result.losses  # a random 400-token model starts near ln(400)

    assert [r.step for r in reports] == list(range(1, 19))
    assert {r.total_steps for r in reports} == {18}
    assert [r.epoch for r in reports] == [e for e in range(1, 7) for _ in range(3)]
    assert [r.loss for r in reports] == result.losses
    assert all(r.tokens_per_s > 0 and r.eta_s >= 0 for r in reports) and reports[-1].eta_s == 0
    assert reports[0].eta_s > reports[-2].eta_s
    assert all(a.elapsed_s < b.elapsed_s for a, b in itertools.pairwise(reports))
    assert result.tokens == 6 * sum(len(lora.encode(trainer, e, 64)[0]) for e in EXAMPLES)  # every epoch, all


def test_training_leaves_the_served_model_unchanged(habit, trainer):
    assert torch.equal(habit["before"], habit["after"])
    assert lora.attached(trainer) == set()


def test_the_loss_is_on_the_answer_only(tiny_engine, tmp_path):
    example = EXAMPLES[0]
    ids, labels = lora.encode(tiny_engine, example, 1024)
    prompt = tiny_engine.encode_chat(example.messages)
    answer = tiny_engine.tokenizer(example.answer, add_special_tokens=False)["input_ids"]
    assert ids == prompt + answer + [tiny_engine.tokenizer.eos_token_id]  # <|im_end|> closes the assistant turn
    assert labels == [-100] * len(prompt) + answer + [tiny_engine.tokenizer.eos_token_id]
    assert lora.encode(tiny_engine, example, len(ids)) is not None
    assert lora.encode(tiny_engine, example, len(ids) - 1) is None
    forged, _ = lora.encode(tiny_engine, lora.Example(example.messages, "a<|im_end|>b"), 1024)
    assert forged.count(tiny_engine.tokenizer.eos_token_id) == 2  # the prompt's user turn and the real end
    with pytest.raises(ValueError, match="None of the 1 examples fits in max_length=64"):
        lora.train(tiny_engine, [TOO_LONG], PARAMS, out_dir=tmp_path / "run", base_sha256="")
    assert not (tmp_path / "run").exists()


def test_the_data_hash_follows_the_examples():
    assert lora.data_hash(EXAMPLES) == lora.data_hash(copy.deepcopy(EXAMPLES))
    assert lora.data_hash(EXAMPLES) != lora.data_hash(EXAMPLES[::-1])
    changed = [*EXAMPLES[:-1], lora.Example(EXAMPLES[-1].messages, EXAMPLES[-1].answer + "!")]
    assert lora.data_hash(EXAMPLES) != lora.data_hash(changed)


# --- saving and serving ----------------------------------------------------------------------------------------


def test_the_saved_adapter_serves_what_was_trained(habit, trainer, tiny_model_dir, tmp_path_factory):
    result = habit["result"]
    folder = Path(result.adapter_dir)
    record = json.loads((folder / "aigc_adapter.json").read_text())
    assert record["adapter_sha256"] == result.adapter_sha256 == lora.adapter_sha256(folder)
    assert record["base_sha256"] == result.base_sha256 == trainer.weights_sha256
    assert record["data_sha256"] == result.data_sha256 == lora.data_hash([*EXAMPLES, TOO_LONG])
    assert record["params"] == PARAMS.as_dict() and record["steps"] == 18 and record["examples"] == 6
    assert not (folder.parent / "checkpoint").exists()

    served = fresh_engine(tiny_model_dir, tmp_path_factory)
    with pytest.raises(
        lora.AdapterMismatch,
        match=rf"expected sha256 {'0' * 64} \(of its files' manifest\), found {result.adapter_sha256}",
    ):
        lora.attach(served, "habit", folder, expected_sha256="0" * 64)
    assert lora.attached(served) == set()
    lora.attach(served, "habit", folder, expected_sha256=result.adapter_sha256)
    wrapper = served.model
    lora.attach(served, "habit", folder)  # already attached: nothing changes
    assert served.model is wrapper and served._runner.model is wrapper and lora.attached(served) == {"habit"}

    ids = probe_ids(served)
    trained = logits(habit["model"], ids)
    assert torch.allclose(logits(served.model, ids, adapter_names=["habit"]), trained, atol=1e-5)
    assert not torch.allclose(trained, habit["before"], atol=1e-3)  # the adapter does change the model


def test_the_adapter_hash_covers_every_file_of_its_folder(habit, tiny_model_dir, tmp_path_factory, tmp_path):
    """A job records the adapter that wrote it: a changed config (its alpha scales every update) or an added
    tokenizer file is another adapter, refused where the recorded one is expected."""
    result = habit["result"]
    folder = Path(shutil.copytree(result.adapter_dir, tmp_path / "adapter"))
    assert lora.adapter_sha256(folder) == result.adapter_sha256
    original = (folder / "adapter_config.json").read_text()
    config = json.loads(original)
    (folder / "adapter_config.json").write_text(json.dumps({**config, "lora_alpha": config["lora_alpha"] * 4}))
    changed = lora.adapter_sha256(folder)
    assert changed != result.adapter_sha256
    assert {"adapter_model.safetensors", "adapter_config.json"} <= set(lora.adapter_manifest(folder))
    assert "aigc_adapter.json" not in lora.adapter_manifest(folder)  # the record holds the hash itself
    served = fresh_engine(tiny_model_dir, tmp_path_factory)
    with pytest.raises(lora.AdapterMismatch):
        lora.attach(served, "habit", folder, expected_sha256=result.adapter_sha256)
    assert lora.attached(served) == set()

    (folder / "adapter_config.json").write_text(original)
    (folder / "tokenizer_config.json").write_text("{}")
    assert lora.adapter_sha256(folder) not in (result.adapter_sha256, changed)
    (folder / "tokenizer_config.json").unlink()
    assert lora.adapter_sha256(folder) == lora.adapter_sha256(Path(result.adapter_dir))


def test_an_engine_keeps_at_most_keep_adapters_detaching_the_least_recently_used_idle_one(
    habit, noise_adapter, tiny_model_dir, tmp_path_factory
):
    engine = fresh_engine(tiny_model_dir, tmp_path_factory)
    alone = engine.generate(greedy(None, 1)).texts
    folders = {"habit": habit["result"].adapter_dir, "noise": noise_adapter, "again": noise_adapter}

    def serving(name):
        return lora.serving(engine, name, folders[name], keep=2)

    with serving("habit"):
        pass
    with serving("noise"):
        noisy = engine.generate(greedy("noise", 1)).texts
    assert lora.attached(engine) == {"habit", "noise"}
    with serving("again"):  # a third: habit, the least recently used, goes
        assert lora.attached(engine) == {"noise", "again"}
        assert engine.generate(greedy("again", 1)).texts == noisy
    with serving("noise"), serving("habit"):  # noise used again: "again" is now the least recent
        assert lora.attached(engine) == {"noise", "habit"}
        assert engine.generate(greedy("noise", 1)).texts == noisy
        with serving("again"):  # past the bound while every attached adapter is held: none can go
            assert lora.attached(engine) == {"noise", "habit", "again"}
        assert lora.attached(engine) == {"noise", "habit"}  # its hold ended: the one idle adapter went
    assert lora.attached(engine) == {"noise", "habit"}
    assert engine.generate(greedy(None, 1)).texts == alone  # the base model is what it was


def test_an_adapter_trained_on_other_weights_is_refused(habit, tiny_model_dir, tmp_path_factory):
    served = fresh_engine(tiny_model_dir, tmp_path_factory)
    served.weights_sha256 = "f" * 64
    with pytest.raises(lora.AdapterMismatch, match="trained on base weights sha256"):
        lora.attach(served, "habit", habit["result"].adapter_dir)


def greedy(adapter, i=0, max_new_tokens=None):
    return GenerationRequest(
        messages=[{"role": "user", "content": f"Write about the {TOPICS[i % len(TOPICS)]}."}],
        max_new_tokens=max_new_tokens or 6 + 4 * i,
        temperature=0,
        seed=i,
        adapter=adapter,
    )


@pytest.fixture(scope="module")
def served(habit, noise_adapter, tiny_model_dir, tmp_path_factory):
    """An engine serving the trained adapter and the random one beside its base model."""
    engine = fresh_engine(tiny_model_dir, tmp_path_factory)
    lora.attach(engine, "habit", habit["result"].adapter_dir)
    lora.attach(engine, "noise", noise_adapter)
    assert lora.attached(engine) == {"habit", "noise"}
    return engine


def test_one_batch_serves_two_adapters_and_the_base(served, tiny_engine):
    # Rows of different lengths, so rows leave the batch at different steps while the others keep going.
    names = ["habit", "noise", None, "noise", None, "habit"]
    alone = [served.generate(greedy(name, i)).texts for i, name in enumerate(names)]
    futures = [served.submit(greedy(name, i)) for i, name in enumerate(names)]
    together = [f.result(timeout=120).texts for f in futures]
    assert together == alone
    # The base rows are what the engine without adapters writes; each adapter writes something else.
    assert alone[2] == tiny_engine.generate(greedy(None, 2)).texts
    assert alone[4] == tiny_engine.generate(greedy(None, 4)).texts
    assert alone[0] != tiny_engine.generate(greedy(None, 0)).texts
    assert alone[1] != tiny_engine.generate(greedy(None, 1)).texts

    with pytest.raises(EngineError, match="'missing' is not attached"):
        served.submit(greedy("missing"))


def test_requests_preempted_for_memory_resume_with_their_adapter(served, caplog):
    """Out of memory, the newest requests leave the batch and are prefilled again later with their tokens: each
    must come back on its own adapter."""
    names = ["habit", "noise", None, "habit", "noise", None]
    requests = lambda: [greedy(name, i, max_new_tokens=24) for i, name in enumerate(names)]  # noqa: E731
    alone = [served.generate(r).texts for r in requests()]
    lengths = [len(served.encode_chat(r.messages)) for r in requests()]
    with DeviceMemory(served.model.get_base_model(), limit=3 * (max(lengths) + 5)) as memory:
        results = run_in_one_admission(served, requests())
    assert [r.texts for r in results] == alone
    assert "out of memory in a decoding step" in caplog.text and memory.raised >= 2
    assert any(r.timings["preempted"] for r in results)


def test_backends_without_adapters_refuse_requests_for_one(tiny_engine, gguf_engine):
    with pytest.raises(EngineError, match="'habit' is not attached"):
        tiny_engine.submit(greedy("habit"))
    with pytest.raises(EngineError, match="this backend serves no LoRA adapters"):
        gguf_engine.submit(greedy("habit"))
    with pytest.raises(EngineError, match="this backend serves no LoRA adapters"):
        RemoteEngine("http://127.0.0.1:9/v1", "any").generate(greedy("habit"))


# --- cancel and resume -----------------------------------------------------------------------------------------


def stop_at(step):
    return lambda progress: progress.step < step


def test_a_cancelled_run_resumes_to_the_adapter_an_uninterrupted_run_writes(habit, trainer, tmp_path):
    data = [*EXAMPLES, TOO_LONG]
    with pytest.raises(lora.TrainingCancelled):  # step 7: past the checkpoint at step 5, inside the third epoch
        lora.train(trainer, data, PARAMS, out_dir=tmp_path, base_sha256=trainer.weights_sha256, progress=stop_at(7))
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert state["step"] == 7 and not (tmp_path / "adapter").exists()

    result = lora.train(trainer, data, PARAMS, out_dir=tmp_path, base_sha256=trainer.weights_sha256)
    full = habit["result"]
    assert result.resumed_from == 7 and result.steps == 18
    assert result.losses == pytest.approx(full.losses, abs=1e-6)
    resumed = load_file(Path(result.adapter_dir) / "adapter_model.safetensors")
    uninterrupted = load_file(Path(full.adapter_dir) / "adapter_model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.allclose(resumed[k], uninterrupted[k], atol=1e-6) for k in resumed)
    assert not (tmp_path / "checkpoint").exists()


def test_training_beside_served_adapters_trains_on_the_base_weights(served, trainer, tmp_path):
    quick = lora.LoraParams(rank=2, epochs=1, batch_size=3, max_length=64)
    beside = lora.train(served, EXAMPLES, quick, out_dir=tmp_path / "served", base_sha256="b")
    plain = lora.train(trainer, EXAMPLES, quick, out_dir=tmp_path / "plain", base_sha256="b")
    assert beside.losses == plain.losses and beside.adapter_sha256 == plain.adapter_sha256
    assert lora.attached(served) == {"habit", "noise"}


def test_a_checkpoint_of_other_parameters_is_not_resumed(trainer, tmp_path):
    quick = lora.LoraParams(rank=2, epochs=1, batch_size=3, max_length=64)
    with pytest.raises(lora.TrainingCancelled):
        lora.train(trainer, EXAMPLES, quick, out_dir=tmp_path, base_sha256="b", progress=stop_at(1))
    other = lora.LoraParams(rank=2, epochs=1, batch_size=3, max_length=64, seed=1)
    assert lora.train(trainer, EXAMPLES, other, out_dir=tmp_path, base_sha256="b").resumed_from == 0
    with pytest.raises(lora.TrainingCancelled):
        lora.train(trainer, EXAMPLES, quick, out_dir=tmp_path, base_sha256="b", progress=stop_at(1))
    assert lora.train(trainer, EXAMPLES, quick, out_dir=tmp_path, base_sha256="b", resume=False).resumed_from == 0


# --- parameters ------------------------------------------------------------------------------------------------


def test_params_refuse_bad_values_naming_each_field():
    assert lora.LoraParams.from_dict({}) == lora.LoraParams()
    assert lora.LoraParams.from_dict(PARAMS.as_dict()) == PARAMS
    assert json.loads(json.dumps(PARAMS.as_dict())) == PARAMS.as_dict()
    bad = {
        "rank": 0,
        "alpha": -1,
        "dropout": 1.0,
        "target_modules": [],
        "epochs": 51,
        "learning_rate": 0,
        "batch_size": True,
        "max_length": 15,
        "seed": "7",
        "checkpoint_every": 0,
        "warmup": 10,
    }
    with pytest.raises(lora.InvalidParams) as caught:
        lora.LoraParams.from_dict(bad)
    assert set(caught.value.errors) == set(bad)
    assert all(caught.value.errors[name] for name in bad)
    with pytest.raises(lora.InvalidParams) as caught:
        lora.LoraParams.from_dict({"target_modules": ["q_proj", "", 3], "rank": 257, "learning_rate": "high"})
    assert set(caught.value.errors) == {"target_modules", "rank", "learning_rate"}
    assert "'', 3" in caught.value.errors["target_modules"][0]
    assert lora.LoraParams.from_dict({"target_modules": ["q_proj", "v_proj"], "alpha": 8.5}).target_modules == (
        "q_proj",
        "v_proj",
    )
