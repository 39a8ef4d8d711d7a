"""Creating, running and replaying jobs."""

from __future__ import annotations

import ast
import logging
import math
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from .. import codeedit, events, logs, metrics, prompts, registry, selectors, shaping
from ..models import Job, JobOutput, JobStatus, Kind, PromptTemplate, TemplateVersion
from ..worker import heartbeat
from . import limits
from .templates import param_limits, resolve_version
from .webhooks import webhook_schedule

log = logging.getLogger("generation.jobs")

# Further sampled rounds for candidates that miss their contract: cheap for one-line headlines, one more
# try for anything longer.
TOP_UP_ROUNDS = {"headline": 4}
HEADLINE_WORDS = (3, 20)
# A word budget becomes a token budget: ~1.4 tokens per English word, with room to reach 1.5x the budget.
TOKENS_PER_WORD = 1.4
# Writing may land within 0.5-1.5x of the asked length; any other word budget is a maximum.
TRIM_RATIO = {Kind.WRITING: 1.5}
SUMMARY_MAX_SHARE = 0.8
PYTHON = ("python", "py", "python3")
# A worker that lost its database connection (PostgreSQL restarted, a failover, a proxy dropped an idle
# connection while the model ran) waits this long in all, on fresh connections, before giving the job up
# to the reconciler: minutes of generated text are not thrown away for a hiccup.
DATABASE_RETRY_DELAYS_S = (0.2, 0.5, 1, 2, 4, 8, 15)


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


def _word_budget(version: TemplateVersion, inputs: dict) -> int | None:
    value = inputs.get(version.length_variable) if version.length_variable else None
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


def _check_context(alias: str, messages: list[dict], inputs: dict, max_new_tokens: int) -> None:
    """Refuse a prompt that cannot fit the model's context with room for the requested output."""
    counter = selectors.prompt_counter(alias)
    if counter is None:  # not published (yet, or a remote engine): the engine or the remote server checks it
        return
    prompt_tokens = counter.count(messages)
    if prompt_tokens + max_new_tokens <= counter.context_length:
        return
    texts = {k: v for k, v in inputs.items() if isinstance(v, str)}
    field = f"inputs.{max(texts, key=lambda k: len(texts[k]))}" if texts else "inputs"
    over = prompt_tokens + max_new_tokens - counter.context_length
    raise ValidationError(
        {
            field: [
                f"Too long for the model: the prompt is {prompt_tokens} tokens and {max_new_tokens} are reserved for "
                f"the output, over the model's context of {counter.context_length} tokens by {over}. Shorten it."
            ]
        }
    )


def job_create(
    *, user, kind=None, template=None, version=None, label=None, inputs=None, params=None, messages=None,
    api_key=None, callback_url="", idempotency_key="", request_hash="", batch=None, model_alias=None,
) -> Job:
    """Validate, render the prompt, check the user's token quota, save the job as queued and, once committed,
    send it to a worker. `messages` (the OpenAI-compatible API) replaces the rendered prompt, and `model_alias`
    the template version's model.

    Raises django ValidationError whose keys name each field at fault ("inputs.text", "params.n", ...), or
    limits.LimitExceeded; nothing is written then.
    """
    tpl = _resolve_template(kind, template)
    tv = resolve_version(tpl, version=version, label=label)
    try:
        cleaned_inputs = prompts.clean_inputs(tv.variables, inputs if inputs is not None else {})
        cleaned_params = prompts.clean_params(params, tv.default_params, param_limits())
    except prompts.InvalidInput as exc:
        raise ValidationError(exc.errors) from None
    budget = _word_budget(tv, cleaned_inputs)
    if budget and "max_new_tokens" not in (params or {}):
        slack = TRIM_RATIO.get(tpl.kind, 1.0) + 0.2
        cleaned_params["max_new_tokens"] = min(param_limits().max_new_tokens, math.ceil(budget * slack * TOKENS_PER_WORD) + 16)
    if cleaned_params["seed"] is None:
        # Record the seed the job will use, so that "run again" replays it exactly.
        cleaned_params["seed"] = secrets.randbelow(prompts.MAX_SEED)
    if messages is None:
        messages = prompts.render_messages(tv.system_prompt, tv.user_template, cleaned_inputs)
    alias = model_alias or tv.model_alias
    if alias not in registry.aliases():
        raise ValidationError({"model": [f"Unknown model {alias!r}; configured: {', '.join(registry.aliases())}."]})
    _check_context(alias, messages, cleaned_inputs, cleaned_params["max_new_tokens"])
    limits.check_token_quota(user, cleaned_params)
    if _documents_python(tv, cleaned_inputs):
        try:
            codeedit.undocumented_functions(cleaned_inputs.get("code", ""))
        except SyntaxError as exc:
            raise ValidationError({"inputs.code": [f"Does not parse as Python (line {exc.lineno}: {exc.msg})."]}) from None
    with transaction.atomic():
        job = Job.objects.create(
            owner=user,
            kind=tpl.kind,
            template=tpl,
            template_version=tv,
            inputs=cleaned_inputs,
            params=cleaned_params,
            messages=messages,
            model_alias=alias,
            api_key=api_key,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            batch=batch,
        )
        transaction.on_commit(lambda: _enqueue(job.pk, alias))
    return job


def job_rerun(job: Job, *, user) -> Job:
    """A new job with the same template version, inputs, params and seed: the same text, replayed."""
    return job_create(
        user=user, template=job.template.slug, version=job.template_version.number, inputs=job.inputs, params=job.params
    )


def _enqueue(job_id, alias: str) -> None:
    """Send the job to its model's queue, which only workers hosting that model consume."""
    from ..tasks import run_job

    Job.objects.filter(pk=job_id).update(enqueued_at=timezone.now())
    try:
        run_job.apply_async(args=[str(job_id)], queue=registry.queue_for(alias))
    except Exception:  # the broker is down: the job stays queued in the database and is sent again later
        log.exception("could not send job %s to the broker", job_id)


def _finish(job_id, status: str, **fields) -> bool:
    """Move a running job to a final status; a job that is no longer running is left alone, so a job that
    was cancelled or already completed elsewhere is never completed twice. A job that ends calls back its
    callback_url once committed (with its outputs, which job_run saves in the same transaction)."""
    done = bool(
        Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(status=status, finished_at=timezone.now(), **fields)
    )
    if done:
        transaction.on_commit(lambda: webhook_schedule(job_id))
    return done


def runnable(now=None) -> Q:
    """Jobs a worker may claim: queued ones, and running ones whose worker stopped beating (it died). A running
    job with a live heartbeat is never claimed again, so a duplicate message cannot run it twice."""
    stale = (now or timezone.now()) - timedelta(seconds=settings.AIGC["STALE_AFTER_S"])
    return Q(status=JobStatus.QUEUED) | Q(status=JobStatus.RUNNING) & (Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True))


def with_database(operation, what: str):
    """Run `operation` (one unit of work with its own transaction, safe to repeat: every status change is
    conditional) and run it again on a fresh connection if the connection dropped under it."""
    for delay in (*DATABASE_RETRY_DELAYS_S, None):
        try:
            return operation()
        except (OperationalError, InterfaceError):
            if delay is None or connection.in_atomic_block:
                raise
            log.warning("database connection lost while %s; retrying in %.1f s", what, delay, exc_info=True)
            try:
                connection.close()
            except Exception:  # closing a dead connection may itself fail; the next query opens a new one
                pass
            time.sleep(delay)


def job_run(job_id, engine=None) -> None:
    """Run one job on this worker's engine and store its outputs. Never raises for a job's own failure."""

    def claim():
        now = timezone.now()
        return Job.objects.filter(runnable(now), pk=job_id).update(
            status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
        )

    if not with_database(claim, f"claiming job {job_id}"):
        log.info("job %s is not runnable (missing, cancelled, finished or running elsewhere); skipped", job_id)
        return
    heartbeat.add(job_id)
    token = logs.current_job.set(str(job_id))  # every log line of this thread carries the job id until the end
    try:
        _run_claimed(job_id, engine)
    finally:
        logs.current_job.reset(token)
        heartbeat.remove(job_id)


def _run_claimed(job_id, engine) -> None:
    job = with_database(lambda: Job.objects.select_related("template_version").get(pk=job_id), f"loading job {job_id}")
    if job.attempts > settings.AIGC["MAX_ATTEMPTS"]:
        _finish(job.pk, JobStatus.FAILED, error=f"Gave up after {job.attempts - 1} attempts: the worker stopped each time.")
        return
    if engine is None:
        from ..worker import get_engine

        engine = get_engine(job.model_alias)
    from ..engine import EngineError

    log.info("job %s: running (%s, attempt %d)", job.pk, job.kind, job.attempts)
    if job.attempts > 1:
        events.reset(job.pk)
    version = job.template_version
    max_words = _max_words(job)
    streamer = events.JobStreamer(job.pk, lambda raw: shaping.shape(version.output_format, raw, "stop", max_words))
    try:
        texts, reasons, usage, timings = _generate(job, engine, max_words, streamer.on_delta)
    except EngineError as exc:
        log.warning("job %s failed: %s", job.pk, exc)
        _fail(job.pk, str(exc), engine)
        return
    except Exception as exc:  # the worker lives on; the user gets a readable reason
        log.exception("job %s failed", job.pk)
        _fail(job.pk, f"Generation failed: {type(exc).__name__}: {exc}", engine)
        return
    streamer.finish(texts)
    timings["first_delta_at"] = streamer.first_sent_at

    def save() -> str | None:
        with transaction.atomic():
            done = _finish(
                job.pk,
                JobStatus.SUCCEEDED,
                model_name=engine.model_name,
                backend=engine.backend,
                weights_sha256=engine.weights_sha256,
                prompt_tokens=usage[0],
                completion_tokens=usage[1],
                timings=timings,
            )
            if done:
                JobOutput.objects.bulk_create(
                    JobOutput(job_id=job.pk, index=i, text=t, finish_reason=r) for i, (t, r) in enumerate(zip(texts, reasons))
                )
        # Not done: cancelled meanwhile, or saved by an earlier try whose answer the dropped connection lost.
        return JobStatus.SUCCEEDED if done else Job.objects.filter(pk=job.pk).values_list("status", flat=True).first()

    final = with_database(save, f"saving job {job.pk}")
    events.publish_end(job.pk, final or JobStatus.CANCELLED)
    if final == JobStatus.SUCCEEDED:
        metrics.record_job(job.model_alias, timings.get("first_token_s"), usage[1], timings["total_s"])
    log.info("job %s: %s in %.2f s, %d completion tokens", job.pk, final, timings["total_s"], usage[1])


def _fail(job_id, error: str, engine) -> None:
    if with_database(lambda: _finish(job_id, JobStatus.FAILED, error=error, model_name=engine.model_name,
                                   backend=engine.backend), f"failing job {job_id}"):
        events.publish_end(job_id, JobStatus.FAILED, error)


def _acceptable(output_format: str, language: str, text: str, min_words: int = 0) -> bool:
    """Whether a shaped candidate meets its contract well enough to keep without another try."""
    if not text.strip() or shaping.count_words(text) < min_words:
        return False
    if output_format == "headline":
        low, high = HEADLINE_WORDS
        return low <= shaping.count_words(text) <= high
    if output_format == "code" and language.lower() in PYTHON:
        try:
            ast.parse(text)
        except SyntaxError:
            return False
    return True


def _generate(job: Job, engine, max_words: int | None, on_delta=None):
    """Ask the engine for the job's candidates and shape them for the template's output format.

    Candidates that miss the contract (a headline of the wrong length or a repeat, Python that does not
    parse, an empty reply) are replaced by further sampled rounds, seeded from the job's seed so a replay
    gives the same result. If rounds run out, the best available candidates are kept.
    """
    from ..engine import EngineError, GenerationRequest

    version = job.template_version
    fmt = version.output_format
    if _documents_python(version, job.inputs):
        return _generate_docstrings(job, engine)  # the code is shown when complete: nothing to stream
    p = job.params
    want = p["n"]
    budget = _word_budget(version, job.inputs)
    language = str(job.inputs.get("language", "python"))
    # Writing must land within 0.5-1.5x of the asked length: a reply under half is sampled once more.
    min_words = math.ceil(budget * 0.5) if budget and job.kind == Kind.WRITING else 0
    request = GenerationRequest(
        messages=job.messages,
        max_new_tokens=p["max_new_tokens"],
        temperature=p["temperature"],
        top_p=p["top_p"],
        n=want,
        seed=p["seed"],
        stop=(["\n"] if fmt == "headline" else []) + p.get("stop", []),
        time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
        cancelled=events.CancelFlag(job.pk),
    )
    good: list[tuple[str, str]] = []
    spare: list[tuple[str, str]] = []
    prompt_tokens = completion_tokens = 0
    total_s = 0.0
    first_timings = None
    for round_no in range(TOP_UP_ROUNDS.get(fmt, 1) + 1):
        if round_no:
            request.seed = (p["seed"] + round_no) % prompts.MAX_SEED
            request.n = min(2 * (want - len(good)), settings.AIGC["MAX_CANDIDATES"])
            request.temperature = max(p["temperature"], 0.7)  # greedy decoding would repeat the same text
        # The first round streams; later rounds only replace candidates that missed the contract.
        result = engine.generate(request, on_delta if round_no == 0 else None)
        first_timings = first_timings or result.timings
        prompt_tokens = result.prompt_tokens
        completion_tokens += result.completion_tokens
        total_s += result.timings["total_s"]
        for text, reason in zip(result.texts, result.finish_reasons):
            shaped = shaping.shape(fmt, text, reason, max_words=max_words)
            pool = good if _acceptable(fmt, language, shaped, min_words) else spare
            pool.append((shaped, reason))
        if fmt == "headline":
            good = _distinct(good)
        if len(good) >= want:
            break
    outputs = list(good)
    for candidate in spare:  # rounds ran out: keep the best of the rest rather than return fewer
        if len(outputs) >= want:
            break
        if candidate[0].strip():
            outputs = _distinct(outputs + [candidate]) if fmt == "headline" else outputs + [candidate]
    outputs = outputs[:want]
    if not outputs:
        raise EngineError("The model produced no usable output; try again or change the inputs.")
    timings = {**first_timings, "total_s": round(total_s, 4)}
    return [t for t, _ in outputs], [r for _, r in outputs], (prompt_tokens, completion_tokens), timings


def _max_words(job: Job) -> int | None:
    """The most words an output may keep: the asked budget (1.5x for writing), and for a summary, less than
    its source whatever was asked."""
    budget = _word_budget(job.template_version, job.inputs)
    max_words = math.floor(budget * TRIM_RATIO.get(job.kind, 1.0)) if budget else None
    if job.kind == Kind.SUMMARY:
        source = max((shaping.count_words(v) for v in job.inputs.values() if isinstance(v, str)), default=0)
        max_words = max(1, min(max_words or source, math.floor(source * SUMMARY_MAX_SHARE)))
    return max_words


def _documents_python(version: TemplateVersion, inputs: dict) -> bool:
    return version.output_format == "docstrings" and str(inputs.get("language", "python")).lower() in PYTHON


def _generate_docstrings(job: Job, engine):
    """Docstrings placed through the syntax tree: the model writes one sentence per undocumented function
    (the template's prompt, rendered with that function as `code`); the code itself is never rewritten, so
    the result parses and behaves exactly as the input."""
    from ..engine import EngineError, GenerationRequest

    version, p = job.template_version, job.params
    code = str(job.inputs.get("code", ""))
    try:
        functions = codeedit.undocumented_functions(code)
    except SyntaxError as exc:
        raise EngineError(f"The code does not parse as Python (line {exc.lineno}: {exc.msg}).") from None
    docs, prompt_tokens, completion_tokens, total_s = {}, 0, 0, 0.0
    for i, fn in enumerate(functions):
        messages = prompts.render_messages(version.system_prompt, version.user_template, {**job.inputs, "code": fn.source})
        for attempt in range(3):  # an empty sentence is sampled again (seeded, so replays match)
            result = engine.generate(
                GenerationRequest(
                    messages=messages, max_new_tokens=min(p["max_new_tokens"], 64),
                    temperature=p["temperature"] if attempt == 0 else max(p["temperature"], 0.7), top_p=p["top_p"],
                    n=1, seed=(p["seed"] + 101 * i + attempt) % prompts.MAX_SEED, stop=["\n"],
                    time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
                )
            )  # fmt: skip
            prompt_tokens += result.prompt_tokens
            completion_tokens += result.completion_tokens
            total_s += result.timings["total_s"]
            docs[fn.body_line] = shaping.clean_headline(shaping.strip_control(result.texts[0]))
            if codeedit.as_docstring(docs[fn.body_line]):
                break
    text = codeedit.insert_docstrings(code, docs) if functions else code
    return [text], ["stop"], (prompt_tokens, completion_tokens), {"total_s": round(total_s, 4), "functions": len(functions)}


def _distinct(candidates: list[tuple[str, str]]) -> list[tuple[str, str]]:
    keep = set(shaping.distinct([t for t, _ in candidates]))
    seen, out = set(), []
    for text, reason in candidates:
        if text in keep and text not in seen:
            seen.add(text)
            out.append((text, reason))
    return out


def reconcile_jobs() -> dict:
    """Nothing stays stuck: a running job whose heartbeat stopped (its worker died) goes back to the queue and
    is sent again; a queued job whose message was sent long ago (the broker lost it, or was down when the job
    was created) is sent again. Duplicates are harmless: only one worker can claim a job (see `runnable`).
    A job that keeps losing its worker fails after AIGC_MAX_ATTEMPTS, with the reason."""
    now = timezone.now()
    lost = Job.objects.filter(runnable(now), status=JobStatus.RUNNING)  # running, and the heartbeat stopped
    # Each job with its model alias, whose queue it goes back to.
    requeued = {pk: alias for pk, alias in lost.values_list("pk", "model_alias")
                if lost.filter(pk=pk).update(status=JobStatus.QUEUED)}  # fmt: skip
    resend_before = now - timedelta(seconds=settings.AIGC["RESEND_QUEUED_AFTER_S"])
    waiting = Job.objects.filter(status=JobStatus.QUEUED).filter(
        Q(enqueued_at__lt=resend_before) | Q(enqueued_at__isnull=True, created_at__lt=resend_before)
    )
    resent = {pk: alias for pk, alias in waiting.values_list("pk", "model_alias") if pk not in requeued}
    for pk, alias in {**requeued, **resent}.items():
        _enqueue(pk, alias)
    if requeued or resent:
        log.warning("reconciler: %d running job(s) lost their worker and were re-sent; %d queued job(s) re-sent",
                    len(requeued), len(resent))  # fmt: skip
    return {"requeued_running": len(requeued), "resent_queued": len(resent)}
