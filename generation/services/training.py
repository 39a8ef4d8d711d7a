"""LoRA adapters trained on the newsroom's approved edits: a run is started on a template's pairs (frozen with
the run), trained by a worker of the `training` queue, shown live, cancellable, resumed from its last checkpoint
after a restart; a run that succeeds leaves an Adapter, a template version naming it, its held-out pairs as a
dataset and an experiment of that version against the base version on them. Production is the gate's to give.

Bounds every run keeps, whoever starts it: the newest AIGC_TRAINING_MAX_PAIRS pairs at most, a deadline of
AIGC_TRAINING_MAX_S from its first start (a run still training then fails, saying so), and no checkpoint left
behind once it has ended (only a run that can still resume keeps one).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from .. import selectors
from ..engine.lora import InvalidParams, LoraParams
from ..infra import registry
from ..models import Adapter, Dataset, TrainingRun, TrainingStatus
from . import dispatch
from .errors import error_line
from .evaluation import dataset_create, experiment_start
from .templates import resolve_version, template_version_create

log = logging.getLogger("generation.training")

MIN_TRAIN_PAIRS = 2  # fewer approved edits than this teach nothing worth measuring
PROGRESS_EVERY_S = 1.0  # how often a running training writes its progress (and reads its cancel flag)


def adapter_alias() -> str:
    """The alias whose workers serve trained adapters: AIGC_ADAPTER_ALIAS (a transformers alias over the same
    weights); where it is not configured and the default alias is itself served by transformers (a GPU worker),
    the default alias, which then serves the base model and its adapters side by side."""
    alias = settings.AIGC["ADAPTER_ALIAS"]
    default = registry.DEFAULT_ALIAS
    if alias not in registry.aliases() and registry.entry(default)["backend"] in registry.ADAPTER_BACKENDS:
        return default
    return alias


def adapters_dir() -> Path:
    return Path(settings.AIGC["MODEL_CACHE_DIR"]) / "adapters"


def _checkpoints_remove(run_id) -> None:
    """A run that ended never resumes: its checkpoint (and any half-written one a killed trainer left) goes."""
    folder = adapters_dir() / str(run_id)
    for found in (folder / "checkpoint", *folder.glob(".checkpoint-*")):
        shutil.rmtree(found, ignore_errors=True)


def _deadline(run: TrainingRun):
    """When a run must have ended: AIGC_TRAINING_MAX_S after it first started (restarts included)."""
    return (run.started_at or timezone.now()) + timedelta(seconds=settings.AIGC["TRAINING_MAX_S"])


def _late_error() -> str:
    limit = settings.AIGC["TRAINING_MAX_S"]
    return f"Stopped at its deadline: a training run may take {limit:g} s from its first start (AIGC_TRAINING_MAX_S)."


def _params(given: dict | None) -> LoraParams:
    try:
        return LoraParams.from_dict(given or {})
    except InvalidParams as exc:
        raise ValidationError({f"params.{k}": v for k, v in exc.errors.items()}) from None


@transaction.atomic
def training_start(
    *, template, user, desk=None, all_desks: bool = False, params: dict | None = None, edited_only: bool = True
) -> TrainingRun:
    """A training run of `template` on one desk's approved edits (the template's own desk, `desk`, or the only
    desk with approved edits), or on every desk's when the curator chose `all_desks`; queued for a training
    worker. The pairs (the newest AIGC_TRAINING_MAX_PAIRS) are frozen with the run, with each desk's share:
    what it trains on and holds out does not move under it."""
    lora = _params(params)
    reading = selectors.source_desk(template, desk=desk, all_desks=all_desks)
    alias = adapter_alias()
    if alias not in registry.aliases() or registry.entry(alias)["backend"] not in registry.ADAPTER_BACKENDS:
        raise ValidationError(
            {
                "model": [
                    f"No alias {alias!r} serves adapters: configure one with the transformers backend over the "
                    "base weights (AIGC_ADAPTER_ALIAS names it)."
                ]
            }
        )
    pairs = selectors.training_pairs(
        template, desk=reading, edited_only=edited_only, limit=settings.AIGC["TRAINING_MAX_PAIRS"]
    )
    shares = selectors.desk_shares(pairs)
    desk = selectors.source_settle(template, shares, desk=reading, all_desks=all_desks)
    train = [p for p in pairs if p.split == selectors.TRAINING_TRAIN]
    held = [p for p in pairs if p.split == selectors.TRAINING_HELD_OUT]
    if len(train) < MIN_TRAIN_PAIRS or not held:
        raise ValidationError(
            {
                "template": [
                    f"{template.slug!r} has {len(pairs)} approved edit(s){' on ' + desk.slug if desk else ''}: "
                    f"training needs at least {MIN_TRAIN_PAIRS + 1} (some to learn from, one held out to measure)."
                ]
            }
        )
    run = TrainingRun.objects.create(
        template=template,
        desk=desk,
        all_desks=desk is None,
        desk_pairs=shares,
        base_version=resolve_version(template, desk=desk),
        model_alias=alias,
        params=lora.as_dict(),
        edited_only=edited_only,
        data=[
            {"messages": p.messages, "answer": p.answer, "split": p.split, "job": p.job_id, "desk": p.desk}
            for p in pairs
        ],
        held_out_cases=[
            {"inputs": p.inputs, "reference": p.answer, **({"seed": p.seed} if p.seed is not None else {})}
            for p in held
        ],
        train_pairs=len(train),
        heldout_pairs=len(held),
        created_by=user,
    )
    transaction.on_commit(lambda: dispatch.training_enqueue(run.pk))
    return run


def training_cancel(run: TrainingRun, *, user) -> TrainingRun:
    """Stop a run: a queued one at once, a running one at its next step (its checkpoint is kept)."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if run.is_final:
            raise ValidationError({"status": [f"This training run has already {run.status}."]})
        if run.status == TrainingStatus.QUEUED:
            run.status, run.finished_at = TrainingStatus.CANCELLED, timezone.now()
        run.cancel_requested = True
        run.save(update_fields=["status", "finished_at", "cancel_requested"])
    if run.is_final:
        _checkpoints_remove(run.pk)
    return run


def _lost(now) -> Q:
    """Running, with a heartbeat older than AIGC_STALE_AFTER_S (or none): its worker died."""
    stale = now - timedelta(seconds=settings.AIGC["STALE_AFTER_S"])
    return Q(status=TrainingStatus.RUNNING) & (Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True))


def _claim(run_id) -> TrainingRun | None:
    """The run for this worker: queued, or lost by a worker that died; not one alive elsewhere, final or
    being cancelled."""
    now = timezone.now()
    with transaction.atomic():
        runnable = Q(status=TrainingStatus.QUEUED) | _lost(now)
        run = TrainingRun.objects.select_for_update().filter(runnable, pk=run_id, cancel_requested=False).first()
        if run is None:
            return None
        run.status, run.heartbeat_at, run.attempts = TrainingStatus.RUNNING, now, run.attempts + 1
        run.started_at = run.started_at or now
        run.save(update_fields=["status", "heartbeat_at", "attempts", "started_at"])
    return run


def _end(run_id, status: str, **fields) -> None:
    ended = TrainingRun.objects.filter(pk=run_id, status=TrainingStatus.RUNNING).update(
        status=status, finished_at=timezone.now(), heartbeat_at=timezone.now(), **fields
    )
    if ended:
        _checkpoints_remove(run_id)


def training_execute(run_id, *, engine_for) -> None:
    """Train a claimed run on `engine_for(alias)`'s model (a copy of it: the serving weights never change), its
    progress written as it goes, and on success the adapter, its version, the held-out dataset and the
    experiment. Never raises for the run's own failure."""

    run = _claim(run_id)
    if run is None:
        log.info("training run %s is not runnable (missing, final, cancelled or alive elsewhere)", run_id)
        return
    if timezone.now() >= _deadline(run):  # resumed after its time was up
        _end(run.pk, TrainingStatus.FAILED, error=_late_error())
        return
    with _heartbeat(run.pk):
        _train(run, engine_for)


@contextlib.contextmanager
def _heartbeat(run_id):
    """Keep the claim alive while the model loads and trains (a step of a large model can outlast the stale
    limit): a thread touches the run's heartbeat every AIGC_HEARTBEAT_S until the work ends."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.AIGC["HEARTBEAT_S"]):
                TrainingRun.objects.filter(pk=run_id, status=TrainingStatus.RUNNING).update(heartbeat_at=timezone.now())
        finally:
            connection.close()  # this thread's own

    thread = threading.Thread(target=beat, name=f"training-heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _train(run: TrainingRun, engine_for) -> None:
    from ..engine import lora

    engine = engine_for(run.model_alias)
    examples = [
        lora.Example(messages=d["messages"], answer=d["answer"])
        for d in run.data
        if d["split"] == selectors.TRAINING_TRAIN
    ]
    out_dir = adapters_dir() / str(run.pk)
    last = {"at": 0.0, "late": False}
    deadline = _deadline(run)
    losses = list(run.losses)  # a resumed run's earlier steps, cut back to its checkpoint at its first step

    def progress(p) -> bool:
        """Each step: the progress and the losses so far written (at most every PROGRESS_EVERY_S, and at the last
        step), and the cancel flag and the deadline read, so a cancel or the run's deadline stops it at its next
        step."""
        del losses[p.step - 1 :]
        losses.append(p.loss)
        now = time.monotonic()
        if now - last["at"] >= PROGRESS_EVERY_S or p.step == p.total_steps:
            last["at"] = now
            fields = ("step", "total_steps", "epoch", "loss", "tokens_per_s", "eta_s", "elapsed_s")
            shown = {k: getattr(p, k) for k in fields}
            TrainingRun.objects.filter(pk=run.pk).update(progress=shown, losses=losses)
        if timezone.now() >= deadline:
            last["late"] = True
            return False
        return not TrainingRun.objects.filter(pk=run.pk, cancel_requested=True).exists()

    try:
        result = lora.train(
            engine,
            examples,
            LoraParams.from_dict(run.params),
            out_dir=out_dir,
            base_sha256=engine.weights_sha256,
            progress=progress,
            resume=True,
        )
    except lora.TrainingCancelled:
        if last["late"]:
            log.warning("training run %s stopped at its deadline", run.pk)
            _end(run.pk, TrainingStatus.FAILED, error=_late_error())
        else:
            log.info("training run %s cancelled", run.pk)
            _end(run.pk, TrainingStatus.CANCELLED)
        return
    except Exception as exc:  # the worker lives on; the curator reads why
        log.exception("training run %s failed", run.pk)
        _end(run.pk, TrainingStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        return
    try:
        _succeed(run, result)
    except Exception as exc:  # e.g. held-out inputs the base version no longer accepts: said, not retried forever
        log.exception("training run %s trained an adapter but could not be finished", run.pk)
        reason = error_line(exc) if isinstance(exc, ValidationError) else f"{type(exc).__name__}: {exc}"
        _end(run.pk, TrainingStatus.FAILED, error=f"Trained adapter {result.adapter_sha256[:12]}, then: {reason}")


@transaction.atomic
def _succeed(run: TrainingRun, result) -> None:
    """The adapter, the version that names it, the held-out dataset and the experiment, with the run's end."""
    path = Path(result.adapter_dir).resolve().relative_to(Path(settings.AIGC["MODEL_CACHE_DIR"]).resolve())
    adapter, _ = Adapter.objects.get_or_create(
        sha256=result.adapter_sha256,
        defaults={
            "path": str(path),
            "base_sha256": result.base_sha256,
            "data_sha256": result.data_sha256,
            "params": run.params,
            "training_run": run,
        },
    )
    base = run.base_version
    version, _ = template_version_create(
        template=run.template,
        user=run.created_by,
        note=f"LoRA adapter {adapter.sha256[:12]} on v{base.number}, from {run.train_pairs} approved edits",
        **{**base.content(), "adapter_sha256": adapter.sha256, "model_alias": run.model_alias},
    )
    dataset = dataset_create(
        template=run.template,
        name=f"heldout-{str(run.pk)[:8]}",
        cases=run.held_out_cases,
        user=run.created_by,
        description=f"The held-out approved edits of training run {run.pk}",
    )
    held = [d for d in run.data if d["split"] == selectors.TRAINING_HELD_OUT and d.get("desk")]
    if held:
        dataset.desk_cases = dict(sorted(Counter(d["desk"] for d in held).items()))
        Dataset.objects.filter(pk=dataset.pk).update(desk_cases=dataset.desk_cases)
    experiment = experiment_start(
        template=run.template,
        user=run.created_by,
        version=version.number,
        baseline=f"v{base.number}",
        dataset=dataset.name,
        model_alias=run.model_alias,
        reuse_baseline=False,
        wait_for_pool=True,  # trained already: a spent pool makes its cases wait, never fails the run
    )
    _end(
        run.pk,
        TrainingStatus.SUCCEEDED,
        progress={**_saved_progress(run.pk), "resumed_from": result.resumed_from},
        adapter_sha256=adapter.sha256,
        base_sha256=result.base_sha256,
        data_sha256=result.data_sha256,
        losses=result.losses,
        version=version,
        dataset=dataset,
        experiment=experiment,
    )


def _saved_progress(run_id) -> dict:
    """The progress the last step wrote (the run in hand was read before training)."""
    return TrainingRun.objects.filter(pk=run_id).values_list("progress", flat=True).first() or {}


def training_reconcile() -> int:
    """Nothing stays stuck: a running run whose heartbeat stopped (its worker died) is sent again, and the new
    claim resumes it from its last checkpoint; a queued run whose message was lost is sent again; a run whose
    worker died while it was being cancelled is cancelled, and one past its deadline fails; neither keeps its
    checkpoint. Returns how many were sent."""
    now = timezone.now()
    dead = _lost(now)
    late = Q(started_at__lt=now - timedelta(seconds=settings.AIGC["TRAINING_MAX_S"]))
    ended = {
        pk: TrainingStatus.CANCELLED if cancelling else TrainingStatus.FAILED
        for pk, cancelling in TrainingRun.objects.filter(dead & (Q(cancel_requested=True) | late)).values_list(
            "pk", "cancel_requested"
        )
    }
    for pk, status in ended.items():
        error = "" if status == TrainingStatus.CANCELLED else _late_error()
        if TrainingRun.objects.filter(dead, pk=pk).update(status=status, finished_at=now, error=error):
            _checkpoints_remove(pk)
    resend_before = now - timedelta(seconds=settings.AIGC["RESEND_QUEUED_AFTER_S"])
    waiting = Q(status=TrainingStatus.QUEUED, created_at__lt=resend_before)
    ids = list(TrainingRun.objects.filter(dead | waiting, cancel_requested=False).values_list("pk", flat=True))
    for run_id in ids:
        dispatch.training_enqueue(run_id)
    if ids:
        log.warning("reconciler: %d training run(s) re-sent (a worker died, or the message was lost)", len(ids))
    return len(ids)
