"""LoRA adapters: training one on approved edits, and serving several beside the base model.

Training works on a copy of the serving engine's model, so the jobs it serves meanwhile are untouched, and
encodes each example exactly as serving prompts it (the chat template with the generation prompt), so the
adapter learns to answer the prompts it will be given. The loss is on the answer only. A run saves checkpoints
and resumes from them to the same result as a run that was never interrupted.

Serving wraps the engine's model in peft's PeftModel; each request names its adapter (or none) and the runner
tells peft which adapter each row of the running batch uses (transformers_backend.TorchRunner), so requests for
different adapters and for the base share one batch. `serving` keeps an engine's adapters bounded: past `keep`,
the least recently used adapter no request holds is detached.

An adapter is known by the sha256 of its folder's manifest: every file's name and sha256 (weights, peft's config,
any tokenizer files), so a changed config is another adapter, as changed weights are.

The parameters, examples and results import without torch or peft: the web tier validates parameters with them.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import EngineError

if TYPE_CHECKING:
    from .transformers_backend import TransformersEngine

WEIGHTS_FILE = "adapter_model.safetensors"
RECORD_FILE = "aigc_adapter.json"  # what an adapter was trained from, written beside peft's own files
BASE = "__base__"  # peft's name, in a mixed batch, for rows that use no adapter
IGNORE = -100  # the label the causal-LM loss skips

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


class InvalidParams(ValueError):
    """Training parameters that cannot be used; `errors` maps each field to what is wrong with it, so a form can
    show every problem at once."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in errors.items()))


class AdapterMismatch(EngineError):
    """The adapter on disk is not the one that was recorded (or was trained on other base weights)."""


class TrainingCancelled(Exception):
    """The progress callback asked to stop; a checkpoint was saved, so a later run resumes from it."""


# --- parameters ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoraParams:
    rank: int = 16
    alpha: float = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    epochs: int = 3
    learning_rate: float = 2e-4
    batch_size: int = 4
    max_length: int = 1024  # tokens per example, prompt and answer together
    seed: int = 0
    checkpoint_every: int = 25  # steps

    @classmethod
    def from_dict(cls, data: dict) -> LoraParams:
        """Parameters as stored or posted (JSON); missing fields take their defaults. Raises InvalidParams
        naming every bad field, unknown ones included."""
        if not isinstance(data, dict):
            raise InvalidParams({"__all__": ["Training parameters must be an object of named values."]})
        errors: dict[str, list[str]] = {}
        known = {f.name for f in fields(cls)}
        for name in data:
            if name not in known:
                errors.setdefault(str(name), []).append(f"Unknown parameter; known ones: {', '.join(sorted(known))}.")
        values = {}
        for name, check in _CHECKS.items():
            if name not in data:
                continue
            value, problem = check(data[name])
            if problem:
                errors.setdefault(name, []).append(problem)
            else:
                values[name] = value
        if errors:
            raise InvalidParams(errors)
        return cls(**values)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        return data


def _integer(low: int, high: int):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int):
            return None, "Must be a whole number."
        if not low <= value <= high:
            return None, f"Must be between {low} and {high}."
        return value, None

    return check


def _number(test: Callable[[float], bool], rule: str):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None, "Must be a number."
        if not test(value):
            return None, f"Must be {rule}."
        return value, None

    return check


def _modules(value):
    if not isinstance(value, list | tuple) or not value:
        return None, "Must be a non-empty list of module names (such as q_proj, v_proj)."
    bad = [m for m in value if not isinstance(m, str) or not _MODULE_NAME.match(m)]
    if bad:
        return None, f"Not module names: {', '.join(repr(m) for m in bad)}."
    return tuple(dict.fromkeys(value)), None


_CHECKS = {
    "rank": _integer(1, 256),
    "alpha": _number(lambda v: v > 0, "greater than 0"),
    "dropout": _number(lambda v: 0 <= v < 1, "at least 0 and below 1"),
    "target_modules": _modules,
    "epochs": _integer(1, 50),
    "learning_rate": _number(lambda v: 0 < v <= 1, "greater than 0 and at most 1"),
    "batch_size": _integer(1, 64),
    "max_length": _integer(16, 32768),
    "seed": _integer(0, 2**63 - 1),
    "checkpoint_every": _integer(1, 1_000_000),
}


# --- examples --------------------------------------------------------------------------------------------------


@dataclass
class Example:
    """One approved edit: the conversation the model was prompted with, and the answer it should have given."""

    messages: list[dict]
    answer: str


def end_token(engine) -> int:
    """The token that closes an assistant turn: what the model must learn to write when the answer is done."""
    eos = engine.tokenizer.eos_token_id
    return eos if eos in engine.eos_ids else min(engine.eos_ids)


def encode(engine, example: Example, max_length: int) -> tuple[list[int], list[int]] | None:
    """Input ids and labels of one example: the prompt exactly as serving sends it, then the answer and the end
    token. Only the answer and the end token are labelled, so the adapter learns the answers, not the prompts.
    The answer is text people wrote: a special-token string in it is read as plain text (as in prompts), so an
    edit cannot teach the model to write control tokens. None when the example is longer than `max_length`."""
    prompt = engine.encode_chat(example.messages)
    answer = engine.tokenizer(example.answer, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    answer = [*answer, end_token(engine)]
    if len(prompt) + len(answer) > max_length:
        return None
    return prompt + answer, [IGNORE] * len(prompt) + answer


def data_hash(examples: list[Example]) -> str:
    """The training data's identity, recorded with the adapter and checked before resuming a checkpoint."""
    canonical = [{"messages": e.messages, "answer": e.answer} for e in examples]
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


# --- training --------------------------------------------------------------------------------------------------


@dataclass
class Progress:
    step: int
    total_steps: int
    epoch: int  # 1-based
    loss: float  # the step's mean loss over its answer tokens
    tokens_per_s: float  # prompt and answer tokens processed per second, over this run so far
    eta_s: float  # seconds left, at this run's pace
    elapsed_s: float  # training time so far, earlier interrupted runs included


@dataclass
class TrainResult:
    adapter_dir: str
    adapter_sha256: str
    base_sha256: str
    data_sha256: str
    steps: int
    examples: int  # examples trained on (those that fit max_length)
    skipped: int  # examples longer than max_length
    tokens: int  # tokens processed over all steps
    seconds: float
    first_loss: float
    last_loss: float
    losses: list[float] = field(default_factory=list)  # one per step
    resumed_from: int = 0  # the checkpoint's step; 0 when the run started fresh


def train(
    engine: TransformersEngine,
    examples: list[Example],
    params: LoraParams,
    *,
    out_dir,
    base_sha256: str,
    progress: Callable[[Progress], bool | None] | None = None,
    resume: bool = True,
) -> TrainResult:
    """Train a LoRA adapter on `examples` and save it into out_dir/adapter (with aigc_adapter.json, its record).

    `progress` is called after every step; returning False stops the run after saving a checkpoint
    (TrainingCancelled). A checkpoint is saved every `params.checkpoint_every` steps too; with `resume`, a run
    whose parameters, data and base match a checkpoint in out_dir continues from it and ends with the adapter an
    uninterrupted run would have written: the batch order and each step's dropout depend only on the seed and
    the step number."""
    import torch
    from peft import LoraConfig, get_peft_model
    from peft.utils import load_peft_weights, set_peft_model_state_dict

    encoded = [pair for pair in (encode(engine, e, params.max_length) for e in examples) if pair is not None]
    if not encoded:
        raise ValueError(
            f"None of the {len(examples)} examples fits in max_length={params.max_length} tokens "
            "(prompt and answer together): raise max_length or shorten the examples."
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_sha256 = data_hash(examples)
    per_epoch = math.ceil(len(encoded) / params.batch_size)
    total = params.epochs * per_epoch
    meta = {"params": params.as_dict(), "data_sha256": data_sha256, "base_sha256": base_sha256, "total_steps": total}
    pad_id = engine.tokenizer.pad_token_id if engine.tokenizer.pad_token_id is not None else min(engine.eos_ids)
    device = engine.device
    checkpoint_dir = out_dir / "checkpoint"

    with (
        torch.inference_mode(False),
        torch.enable_grad(),
        torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
    ):
        torch.manual_seed(params.seed)  # the LoRA A matrices' initialisation
        config = LoraConfig(
            task_type="CAUSAL_LM",
            r=params.rank,
            lora_alpha=params.alpha,
            lora_dropout=params.dropout,
            target_modules=list(params.target_modules),
        )
        model = get_peft_model(_base_copy(engine).to(device=device, dtype=torch.float32), config)
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=params.learning_rate)
        order = torch.Generator().manual_seed(params.seed)

        step, losses, tokens, seconds_before = 0, [], 0, 0.0
        state = _read_checkpoint(checkpoint_dir, meta) if resume else None
        if state is not None:
            set_peft_model_state_dict(model, load_peft_weights(str(checkpoint_dir), device=str(device)))
            optimizer.load_state_dict(torch.load(checkpoint_dir / "optimizer.pt", map_location=device))
            order.set_state(torch.tensor(list(bytes.fromhex(state["generator"])), dtype=torch.uint8))
            step, losses, tokens, seconds_before = state["step"], state["losses"], state["tokens"], state["seconds"]
        resumed_from = step

        started, run_tokens = time.monotonic(), 0
        epoch_start_state = order.get_state()

        def checkpoint() -> None:
            # The shuffle state as of the start of the epoch the next step belongs to: resuming redraws that
            # epoch's order and skips the batches already done.
            generator = order.get_state() if step % per_epoch == 0 else epoch_start_state
            record = {
                **meta,
                "step": step,
                "generator": bytes(generator.tolist()).hex(),
                "losses": losses,
                "tokens": tokens,
                "seconds": seconds_before + time.monotonic() - started,
            }

            def write(tmp: Path) -> None:
                model.save_pretrained(tmp)
                torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
                (tmp / "state.json").write_text(json.dumps(record))

            _write_dir(checkpoint_dir, write)

        for epoch in range(step // per_epoch, params.epochs):
            epoch_start_state = order.get_state()
            permutation = torch.randperm(len(encoded), generator=order).tolist()
            for batch_index in range(step - epoch * per_epoch, per_epoch):
                rows = [encoded[i] for i in permutation[batch_index * params.batch_size :][: params.batch_size]]
                ids, mask, labels = _batch(rows, pad_id, device)
                torch.manual_seed((params.seed * 1_000_003 + step) % 2**63)  # this step's dropout
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                losses.append(float(loss.detach()))
                batch_tokens = sum(len(r[0]) for r in rows)
                tokens, run_tokens = tokens + batch_tokens, run_tokens + batch_tokens
                run_s = time.monotonic() - started
                report = Progress(
                    step=step,
                    total_steps=total,
                    epoch=epoch + 1,
                    loss=losses[-1],
                    tokens_per_s=run_tokens / run_s if run_s > 0 else 0.0,
                    eta_s=run_s / (step - resumed_from) * (total - step),
                    elapsed_s=seconds_before + run_s,
                )
                if progress is not None and progress(report) is False:
                    checkpoint()
                    raise TrainingCancelled(f"training stopped at step {step} of {total}; a checkpoint was saved")
                if step % params.checkpoint_every == 0 and step < total:
                    checkpoint()

        model.eval()
        seconds = seconds_before + time.monotonic() - started
        record = {
            "base_sha256": base_sha256,
            "data_sha256": data_sha256,
            "params": params.as_dict(),
            "steps": step,
            "examples": len(encoded),
            "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None,
        }

        def write_adapter(tmp: Path) -> None:
            model.save_pretrained(tmp)
            record["adapter_sha256"] = adapter_sha256(tmp)
            (tmp / RECORD_FILE).write_text(json.dumps(record, indent=1, ensure_ascii=False))

        adapter_dir = _write_dir(out_dir / "adapter", write_adapter)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return TrainResult(
        adapter_dir=str(adapter_dir),
        adapter_sha256=record["adapter_sha256"],
        base_sha256=base_sha256,
        data_sha256=data_sha256,
        steps=step,
        examples=len(encoded),
        skipped=len(examples) - len(encoded),
        tokens=tokens,
        seconds=seconds,
        first_loss=losses[0] if losses else float("nan"),
        last_loss=losses[-1] if losses else float("nan"),
        losses=list(losses),
        resumed_from=resumed_from,
    )


def _base_copy(engine):
    """A private copy of the base model: training never touches the weights the engine serves. Taken between
    forward steps (the runner's lock), without any adapter attached for serving."""
    from peft import PeftModel

    with engine._runner.lock:
        model = copy.deepcopy(engine.model)
    if isinstance(model, PeftModel):
        model = model.unload()  # the served adapters' layers out, the base weights as they were
    return model


def _batch(rows: list[tuple[list[int], list[int]]], pad_id: int, device):
    """Right-padded input ids, attention mask and labels (padding: mask 0, label ignored)."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, (row_ids, row_labels) in enumerate(rows):
        ids[i, : len(row_ids)] = torch.tensor(row_ids)
        mask[i, : len(row_ids)] = 1
        labels[i, : len(row_labels)] = torch.tensor(row_labels)
    return ids.to(device), mask.to(device), labels.to(device)


def _read_checkpoint(folder: Path, meta: dict) -> dict | None:
    """The checkpoint's state when it belongs to this run (same parameters, data and base), else None."""
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        return None
    if any(state.get(k) != v for k, v in meta.items()):
        return None
    if not (folder / WEIGHTS_FILE).is_file() or not (folder / "optimizer.pt").is_file():
        return None
    return state


def _write_dir(dest: Path, write: Callable[[Path], None]) -> Path:
    """Fill a temporary folder beside `dest`, then put it in place: a reader sees the old folder or the new one,
    never half of one."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    old = None
    try:
        write(tmp)
        if dest.exists():  # a folder cannot replace a non-empty one: move the old one aside first
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}-old-", dir=dest.parent))
            os.replace(dest, old / dest.name)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not dest.exists():
            os.replace(old / dest.name, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest


# --- serving ---------------------------------------------------------------------------------------------------


def adapter_manifest(adapter_dir) -> dict[str, str]:
    """Every file of an adapter's folder (subfolders included, by their path in it) with its sha256; the record
    this module writes beside them (aigc_adapter.json, which holds the hash) aside."""
    from .loading import sha256_file

    folder = Path(adapter_dir)
    return {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).as_posix() != RECORD_FILE
    }


def adapter_sha256(adapter_dir) -> str:
    """The sha256 of an adapter's manifest (adapter_manifest: each file's name and sha256, in name order): what a
    job records as the adapter that wrote it. Any changed, added or removed file changes it."""
    manifest = "".join(f"{digest}  {name}\n" for name, digest in sorted(adapter_manifest(adapter_dir).items()))
    return hashlib.sha256(manifest.encode("utf-8")).hexdigest()


def attached(engine) -> set[str]:
    """The names of the adapters the engine serves beside its base model."""
    from peft import PeftModel

    return set(engine.model.peft_config) if isinstance(engine.model, PeftModel) else set()


def attach(engine: TransformersEngine, name: str, adapter_dir, expected_sha256: str | None = None) -> None:
    """Serve the adapter in `adapter_dir` under `name`, beside the base model and the adapters already attached;
    requests choose it with GenerationRequest.adapter. Attaching a name already attached does nothing.

    The first adapter wraps the engine's model in a PeftModel; the runner then tells peft, at every forward step,
    which adapter each row uses ("__base__" for none), so requests without an adapter still get the base model.
    Called directly without `adapter_names`, the wrapper would apply its active adapter to every row: serve
    through the engine. Raises AdapterMismatch when the weights are not the expected ones, or when the adapter
    records that it was trained on other base weights."""
    from peft import PeftModel

    if not isinstance(name, str) or not name or name == BASE:
        raise EngineError(f"{name!r} cannot name an adapter.")
    if name in attached(engine):
        return
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / WEIGHTS_FILE).is_file():
        raise EngineError(f"No LoRA adapter in {adapter_dir} (it has no {WEIGHTS_FILE}).")
    if expected_sha256:
        found = adapter_sha256(adapter_dir)
        if found != expected_sha256:
            raise AdapterMismatch(
                f"The adapter {name!r} in {adapter_dir} is not the one recorded: expected sha256 "
                f"{expected_sha256} (of its files' manifest), found {found}."
            )
    _check_base(engine, name, adapter_dir)
    runner = engine._runner
    with runner.lock:  # between forward steps: peft changes the model's layers in place
        if isinstance(engine.model, PeftModel):
            engine.model.load_adapter(str(adapter_dir), adapter_name=name)
        else:
            engine.model = PeftModel.from_pretrained(engine.model, str(adapter_dir), adapter_name=name)
        engine.model.eval()
        runner.model = engine.model
        runner.adapters = True


def detach(engine: TransformersEngine, name: str) -> None:
    """Stop serving the adapter `name` (its layers leave the model, between forward steps); not attached:
    nothing. The caller makes sure no request uses it (`serving` detaches only adapters nobody holds)."""
    if name not in attached(engine):
        return
    with engine._runner.lock:
        engine.model.delete_adapter(name)


class _Served:
    """An engine's adapters as `serving` keeps them: when each was last used, and the requests holding each."""

    def __init__(self) -> None:
        self.used: OrderedDict[str, None] = OrderedDict()  # least recently used first
        self.holds: Counter = Counter()
        self.lock = threading.Lock()


def _served(engine) -> _Served:
    return engine.__dict__.setdefault("_lora_served", _Served())


def _evict(engine, state: _Served, keep: int) -> None:
    """Detach the least recently used adapters nobody holds until at most `keep` are attached (adapters attached
    without `serving` count as the least recent); those held stay, even past `keep`."""
    names = attached(engine)
    order = [n for n in sorted(names) if n not in state.used] + [n for n in state.used if n in names]
    extra = len(names) - max(1, keep)
    for name in order:
        if extra <= 0:
            break
        if state.holds[name] > 0:
            continue
        detach(engine, name)
        state.used.pop(name, None)
        extra -= 1


@contextlib.contextmanager
def serving(engine: TransformersEngine, name: str, adapter_dir, expected_sha256: str | None = None, *, keep: int = 8):
    """The adapter attached (as `attach` does, checked against `expected_sha256`) and held while the block runs
    the requests that use it; it becomes the most recently used. At most `keep` adapters stay attached: the least
    recently used ones that no request holds are detached as another is attached and as holds end."""
    state = _served(engine)
    with state.lock:
        attach(engine, name, adapter_dir, expected_sha256)
        state.holds[name] += 1
        state.used[name] = None
        state.used.move_to_end(name)
        _evict(engine, state, keep)
    try:
        yield name
    finally:
        with state.lock:
            state.holds[name] -= 1
            _evict(engine, state, keep)


def _check_base(engine, name: str, adapter_dir: Path) -> None:
    """An adapter trained here records its base weights; applied to other weights it would write nonsense."""
    try:
        record = json.loads((adapter_dir / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return  # an adapter from elsewhere: nothing recorded to check
    trained_on = record.get("base_sha256") if isinstance(record, dict) else None
    if trained_on and engine.weights_sha256 and trained_on != engine.weights_sha256:
        raise AdapterMismatch(
            f"The adapter {name!r} was trained on base weights sha256 {trained_on}, but this engine serves "
            f"{engine.model_name} with weights sha256 {engine.weights_sha256}."
        )
