"""Creating and running jobs."""

from __future__ import annotations

import logging
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .. import prompts, selectors, shaping
from ..models import Job, JobOutput, JobStatus, Kind, PromptTemplate

log = logging.getLogger("generation.jobs")

HEADLINE_TOP_UP_ROUNDS = 3
# Per kind, strings that end a candidate early: a headline is one line.
STOP_STRINGS = {Kind.HEADLINE: ["\n"]}


def _param_limits() -> prompts.ParamLimits:
    return prompts.ParamLimits(
        max_new_tokens=settings.AIGC["MAX_NEW_TOKENS"], max_candidates=settings.AIGC["MAX_CANDIDATES"]
    )


def _resolve_template(kind: str | None, template_slug: str | None) -> PromptTemplate:
    if template_slug:
        template = selectors.template_by_slug(template_slug)
        if template is None:
            raise ValidationError({"template": [f"Unknown template {template_slug!r}."]})
        if kind and kind != template.kind:
            raise ValidationError({"kind": [f"Template {template_slug!r} is for {template.kind!r}, not {kind!r}."]})
        return template
    if not kind:
        raise ValidationError({"kind": ["Give a kind (writing, summary, headline or code) or a template."]})
    if kind not in Kind.values:
        raise ValidationError({"kind": [f"Unknown kind {kind!r}; choose one of {', '.join(Kind.values)}."]})
    template = selectors.template_default_for_kind(kind)
    if template is None:
        raise ValidationError({"kind": [f"No default template is set up for {kind!r}."]})
    return template


def job_create(*, user, kind: str | None = None, template: str | None = None, inputs=None, params=None) -> Job:
    """Validate, render the prompt, save the job as queued and, once committed, send it to a worker.

    Raises django ValidationError whose keys name each field at fault ("inputs.text", "params.n", ...);
    nothing is written then.
    """
    tpl = _resolve_template(kind, template)
    try:
        cleaned_inputs = prompts.clean_inputs(tpl.variables, inputs if inputs is not None else {})
        cleaned_params = prompts.clean_params(params, tpl.default_params, _param_limits())
    except prompts.InvalidInput as exc:
        raise ValidationError(exc.errors) from None
    if cleaned_params["seed"] is None:
        # Record the seed the job will use, so that "run again" replays it exactly.
        cleaned_params["seed"] = secrets.randbelow(prompts.MAX_SEED)
    messages = prompts.render_messages(tpl.system_prompt, tpl.user_template, cleaned_inputs)
    with transaction.atomic():
        job = Job.objects.create(
            owner=user, kind=tpl.kind, template=tpl, inputs=cleaned_inputs, params=cleaned_params, messages=messages
        )
        transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _enqueue(job_id) -> None:
    from ..tasks import run_job

    try:
        # The queue is read at send time, so that deployments (and tests) can route jobs per queue.
        run_job.apply_async(args=[str(job_id)], queue=settings.CELERY_TASK_DEFAULT_QUEUE)
    except Exception:  # the broker is down: the job stays queued in the database and is sent again later
        log.exception("could not send job %s to the broker", job_id)


def _finish(job_id, status: str, **fields) -> bool:
    """Move a running job to a final status; a job that is no longer running is left alone, so a job that
    was cancelled or already completed elsewhere is never completed twice."""
    return bool(
        Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(status=status, finished_at=timezone.now(), **fields)
    )


def job_run(job_id, engine=None) -> None:
    """Run one job on this worker's engine and store its outputs. Never raises for a job's own failure."""
    claimed = Job.objects.filter(pk=job_id, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        status=JobStatus.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1
    )
    if not claimed:
        log.info("job %s is not runnable (missing, cancelled or finished); skipped", job_id)
        return
    job = Job.objects.get(pk=job_id)
    if job.attempts > settings.AIGC["MAX_ATTEMPTS"]:
        _finish(job.pk, JobStatus.FAILED, error=f"Gave up after {job.attempts - 1} attempts: the worker stopped each time.")
        return
    if engine is None:
        from ..worker import get_engine

        engine = get_engine()
    from ..engine import EngineError

    log.info("job %s: running (%s, attempt %d)", job.pk, job.kind, job.attempts)
    try:
        texts, reasons, usage, timings = _generate(job, engine)
    except EngineError as exc:
        log.warning("job %s failed: %s", job.pk, exc)
        _finish(job.pk, JobStatus.FAILED, error=str(exc), model_name=engine.model_name)
        return
    except Exception as exc:  # the worker lives on; the user gets a readable reason
        log.exception("job %s failed", job.pk)
        _finish(job.pk, JobStatus.FAILED, error=f"Generation failed: {type(exc).__name__}: {exc}", model_name=engine.model_name)
        return
    with transaction.atomic():
        done = _finish(
            job.pk,
            JobStatus.SUCCEEDED,
            model_name=engine.model_name,
            weights_sha256=engine.weights_sha256,
            prompt_tokens=usage[0],
            completion_tokens=usage[1],
            timings=timings,
        )
        if done:
            JobOutput.objects.bulk_create(
                JobOutput(job_id=job.pk, index=i, text=t, finish_reason=r) for i, (t, r) in enumerate(zip(texts, reasons))
            )
    log.info("job %s: %s in %.2f s, %d completion tokens", job.pk, "succeeded" if done else "dropped", timings["total_s"], usage[1])


def _generate(job: Job, engine):
    """Ask the engine for the job's candidates and shape them for its kind.

    Headlines must be n distinct lines: duplicates are topped up with further sampled rounds (seeded from the
    job's seed, so a replay gives the same set).
    """
    from ..engine import EngineError, GenerationRequest

    p = job.params
    want = p["n"]
    request = GenerationRequest(
        messages=job.messages,
        max_new_tokens=p["max_new_tokens"],
        temperature=p["temperature"],
        top_p=p["top_p"],
        n=want,
        seed=p["seed"],
        stop=STOP_STRINGS.get(job.kind, []),
        time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
    )
    result = engine.generate(request)
    prompt_tokens, completion_tokens = result.prompt_tokens, result.completion_tokens
    total_s = result.timings["total_s"]
    shaped = [shaping.shape(job.kind, t, r) for t, r in zip(result.texts, result.finish_reasons)]
    reasons = list(result.finish_reasons)
    if job.kind == Kind.HEADLINE:
        shaped = shaping.distinct(shaped)
        for round_no in range(1, HEADLINE_TOP_UP_ROUNDS + 1):
            if len(shaped) >= want:
                break
            request.seed = (p["seed"] + round_no) % prompts.MAX_SEED
            request.n = min(2 * (want - len(shaped)), settings.AIGC["MAX_CANDIDATES"])
            request.temperature = max(p["temperature"], 0.7)  # greedy decoding would repeat the same line
            extra = engine.generate(request)
            completion_tokens += extra.completion_tokens
            total_s += extra.timings["total_s"]
            shaped = shaping.distinct(shaped + [shaping.shape(job.kind, t) for t in extra.texts])
        shaped = shaped[:want]
        if not shaped:
            raise EngineError("The model produced no usable headline; try again or change the inputs.")
        reasons = ["stop"] * len(shaped)
    timings = {**result.timings, "total_s": round(total_s, 4)}
    return shaped, reasons, (prompt_tokens, completion_tokens), timings
