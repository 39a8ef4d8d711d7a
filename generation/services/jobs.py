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
from django.db.models import Q
from django.utils import timezone

from ..content import codeedit, prompts, shaping
from ..infra import events, logs, metrics, registry
from .. import selectors
from ..models import FINAL_STATUSES, Job, JobOutput, JobStatus, Kind, PromptTemplate, TemplateVersion
from . import dispatch, limits
from .templates import param_limits, resolve_version
from .webhooks import callback_url_check, webhook_enqueue

log = logging.getLogger("generation.jobs")

# Further sampled rounds for candidates that miss their contract: cheap for one-line headlines, one more
# try for anything longer.
TOP_UP_ROUNDS = {"headline": 4}
# Documenting code: a sentence per function, sampled again when empty.
DOCSTRING_TRIES = 3
DOCSTRING_MAX_TOKENS = 64
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


def _check_context(alias: str, messages: list[dict], inputs: dict, max_new_tokens: int) -> int:
    """Refuse a prompt that cannot fit the model's context with room for the requested output; its tokens."""
    counter = selectors.prompt_counter(alias)
    if counter is None:  # not published (yet, or a remote engine): the engine or the remote server checks it
        return _tokens_at_most(messages)
    prompt_tokens = counter.count(messages)
    if prompt_tokens + max_new_tokens <= counter.context_length:
        return prompt_tokens
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
    if callback_url:
        callback_url_check(callback_url)  # a 400 naming callback_url for a plainly internal or plain-http target
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
    prompt_tokens = _check_context(alias, messages, cleaned_inputs, cleaned_params["max_new_tokens"])
    if _documents_python(tv, cleaned_inputs):
        reserved = _docstrings_reservation(tv, cleaned_inputs, cleaned_params, alias)
    else:
        reserved = most_tokens(tv.output_format, cleaned_params, prompt_tokens)
    with transaction.atomic():
        # Checked and inserted under one lock: concurrent requests cannot together pass the quota.
        limits.lock_quota(user)
        limits.check_token_quota(user, reserved)
        job = Job.objects.create(
            reserved_tokens=reserved,
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


def top_up_rounds(output_format: str) -> int:
    return TOP_UP_ROUNDS.get(output_format, 1)


def most_tokens(output_format: str, params: dict, prompt_tokens: int) -> int:
    """The most a job can use: its prompt, its first round (n candidates), then every re-sampling round at its
    widest (twice the candidates still missing, up to MAX_CANDIDATES)."""
    n, rounds = params["n"], top_up_rounds(output_format)
    widest = min(2 * n, settings.AIGC["MAX_CANDIDATES"])
    return prompt_tokens + params["max_new_tokens"] * (n + rounds * widest)


def _tokens_at_most(messages: list[dict]) -> int:
    """A prompt's tokens when no tokenizer is at hand (a remote engine): no tokenizer makes more tokens than
    UTF-8 bytes, plus the chat template's few per message."""
    return sum(len(str(m.get("content", "")).encode()) + 8 for m in messages) + 8


def docstring_messages(version: TemplateVersion, inputs: dict, fn) -> list[dict]:
    """The prompt of one function's docstring: the template rendered with that function as `code`."""
    return prompts.render_messages(version.system_prompt, version.user_template, {**inputs, "code": fn.source})


def docstring_tokens(params: dict) -> int:
    return min(params["max_new_tokens"], DOCSTRING_MAX_TOKENS)


def _docstrings_reservation(version: TemplateVersion, inputs: dict, params: dict, alias: str) -> int:
    """Documenting code is one model call per undocumented function (and up to DOCSTRING_TRIES each): refuse
    code with more functions than a job may take, and reserve what all those calls can use."""
    try:
        functions = codeedit.undocumented_functions(inputs.get("code", ""))
    except SyntaxError as exc:
        raise ValidationError({"inputs.code": [f"Does not parse as Python (line {exc.lineno}: {exc.msg})."]}) from None
    cap = settings.AIGC["MAX_FUNCTIONS_PER_JOB"]
    if len(functions) > cap:
        raise ValidationError({"inputs.code": [
            f"{len(functions)} functions lack a docstring; a job documents at most {cap}. Split the code."]})  # fmt: skip
    counter = selectors.prompt_counter(alias)
    total = 0
    for fn in functions:
        messages = docstring_messages(version, inputs, fn)
        prompt = counter.count(messages) if counter is not None else _tokens_at_most(messages)
        total += DOCSTRING_TRIES * (prompt + docstring_tokens(params))
    return total


def job_rerun(job: Job, *, user) -> Job:
    """A new job with the same template version, inputs, params and seed: the same text, replayed."""
    return job_create(
        user=user, template=job.template.slug, version=job.template_version.number, inputs=job.inputs, params=job.params
    )


def _enqueue(job_id, alias: str) -> None:
    """Send the job to its model's queue, which only workers hosting that model consume."""
    Job.objects.filter(pk=job_id).update(enqueued_at=timezone.now())
    try:
        dispatch.send(dispatch.RUN_JOB, [str(job_id)], queue=registry.queue_for(alias))
    except Exception:  # the broker is down: the job stays queued in the database and is sent again later
        log.exception("could not send job %s to the broker", job_id)


@transaction.atomic  # the final state and the callback it owes (the outbox row) commit together, or neither
def _finish(job_id, status: str, *, attempt: int, **fields) -> bool:
    """Move a running job to a final status; a job that is no longer running is left alone, so a job that
    was cancelled or already completed elsewhere is never completed twice. `attempt` is the fencing token of
    the claim: a worker that stalled past its heartbeat, whose job was claimed again by another, cannot
    overwrite what the new claim writes. A job that ends owes a call to its callback_url: written to the webhook
    outbox in this transaction, sent once committed (with its outputs, which job_run saves in the same one)."""
    done = bool(
        Job.objects.filter(pk=job_id, status=JobStatus.RUNNING, attempts=attempt).update(
            status=status, finished_at=timezone.now(), **fields
        )
    )
    if done:
        webhook_enqueue(job_id)
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


def job_run(job_id, *, engine=None, engine_for=None, heartbeat=None) -> None:
    """Run one job and store its outputs. Never raises for a job's own failure. The worker hands in what it
    holds (services never import the worker layer): `engine_for(alias)`, its engine for the job's model (or one
    `engine`), and its `heartbeat` (add(job_id, attempt) / remove(job_id)), which keeps the claim alive."""

    attempt = with_database(lambda: job_claim(job_id), f"claiming job {job_id}")
    if attempt is None:
        log.info("job %s is not runnable (missing, cancelled, finished or running elsewhere); skipped", job_id)
        return
    if heartbeat is not None:
        heartbeat.add(job_id, attempt)
    token = logs.current_job.set(str(job_id))  # every log line of this thread carries the job id until the end
    try:
        _run_claimed(job_id, attempt, engine, engine_for)
    finally:
        logs.current_job.reset(token)
        if heartbeat is not None:
            heartbeat.remove(job_id)


def job_claim(job_id) -> int | None:
    """Claim a runnable job for this worker: its new attempt number, the fencing token every later write of
    this run must carry (finish, fail, heartbeat), or None when the job is not runnable. Row-locked, so two
    workers that see the same stale job cannot both get the same token."""
    now = timezone.now()
    with transaction.atomic():
        row = Job.objects.select_for_update().filter(runnable(now), pk=job_id).values("attempts").first()
        if row is None:
            return None
        attempt = row["attempts"] + 1
        Job.objects.filter(pk=job_id).update(status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, attempts=attempt)
    return attempt


def _run_claimed(job_id, attempt: int, engine, engine_for) -> None:
    job = with_database(lambda: Job.objects.select_related("template_version").get(pk=job_id), f"loading job {job_id}")
    if attempt > settings.AIGC["MAX_ATTEMPTS"]:
        _finish(job.pk, JobStatus.FAILED, attempt=attempt,
                error=f"Gave up after {attempt - 1} attempts: the worker stopped each time.")  # fmt: skip
        return
    engine = engine if engine is not None else engine_for(job.model_alias)
    from ..engine import EngineError

    log.info("job %s: running (%s, attempt %d)", job.pk, job.kind, attempt)
    if attempt > 1:
        events.reset(job.pk)
    version = job.template_version
    max_words = _max_words(job)
    streamer = events.JobStreamer(job.pk, lambda raw: shaping.shape(version.output_format, raw, "stop", max_words))
    spent = Spent(settings.CELERY_TASK_SOFT_TIME_LIMIT)
    try:
        texts, reasons, timings = _generate(job, engine, max_words, spent, streamer.on_delta)
    except EngineError as exc:
        log.warning("job %s failed: %s", job.pk, exc)
        _fail(job.pk, attempt, str(exc), engine, spent)
        return
    except Exception as exc:  # the worker lives on; the user gets a readable reason
        log.exception("job %s failed", job.pk)
        _fail(job.pk, attempt, f"Generation failed: {type(exc).__name__}: {exc}", engine, spent)
        return
    streamer.finish(texts)
    timings["first_delta_at"] = streamer.first_sent_at

    def save() -> str | None:
        with transaction.atomic():
            done = _finish(
                job.pk,
                JobStatus.SUCCEEDED,
                attempt=attempt,
                model_name=engine.model_name,
                backend=engine.backend,
                weights_sha256=engine.weights_sha256,
                prompt_tokens=spent.prompt_tokens,
                completion_tokens=spent.completion_tokens,
                timings=timings,
            )
            if done:
                JobOutput.objects.bulk_create(
                    JobOutput(job_id=job.pk, index=i, text=t, finish_reason=r) for i, (t, r) in enumerate(zip(texts, reasons))
                )
        if done:
            return JobStatus.SUCCEEDED
        # Not done: cancelled meanwhile (it pays for what it generated), re-claimed by another worker, or saved
        # by an earlier try whose answer the dropped connection lost.
        _settle(job.pk, attempt, spent, engine)
        return Job.objects.filter(pk=job.pk).values_list("status", flat=True).first()

    final = with_database(save, f"saving job {job.pk}")
    events.publish_end(job.pk, final or JobStatus.CANCELLED)
    if final == JobStatus.SUCCEEDED:
        metrics.record_job(job.model_alias, timings.get("first_token_s"), spent.completion_tokens, timings["total_s"])
    log.info("job %s: %s in %.2f s, %d completion tokens", job.pk, final, timings["total_s"], spent.completion_tokens)


class Spent:
    """What a run has used so far, over every engine call (re-sampling rounds, one call per documented
    function), and the run's one deadline: settled on the job whatever its end, so that no end is free."""

    def __init__(self, time_limit: float) -> None:
        self.prompt_tokens = self.completion_tokens = 0
        self.time_limit = time_limit
        self.deadline = time.monotonic() + time_limit

    def add(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens

    def left_s(self) -> float:
        """Seconds left of the whole job's time limit; every engine call gets this as its own limit."""
        return max(0.001, self.deadline - time.monotonic())

    def generate(self, engine, request, on_delta=None, *, again: bool = False):
        """One engine call under the job's deadline, its usage counted even when it fails partway. `again`: the
        same prompt as the call before (a re-sampling round), counted once, as the API reports it."""
        from ..engine import EngineError, GenerationTimeout

        request.time_limit = self.left_s()
        try:
            result = engine.generate(request, on_delta)
        except EngineError as exc:
            self.add(0 if again else getattr(exc, "prompt_tokens", 0), getattr(exc, "completion_tokens", 0))
            if isinstance(exc, GenerationTimeout):  # named by the job's limit, not what was left of it
                raise GenerationTimeout.after(self.time_limit, exc.prompt_tokens, exc.completion_tokens) from None
            raise
        self.add(0 if again else result.prompt_tokens, result.completion_tokens)
        return result


def _settle(job_id, attempt: int, spent: Spent, engine) -> None:
    """Record the usage of a run that ended without completing (cancelled, failed), unless another claim of
    the job owns it now."""
    Job.objects.filter(pk=job_id, attempts=attempt, status__in=FINAL_STATUSES).update(
        prompt_tokens=spent.prompt_tokens, completion_tokens=spent.completion_tokens,
        model_name=engine.model_name, backend=engine.backend,
    )  # fmt: skip


def _fail(job_id, attempt: int, error: str, engine, spent: Spent) -> None:
    def fail() -> bool:
        with transaction.atomic():
            done = _finish(job_id, JobStatus.FAILED, attempt=attempt, error=error, model_name=engine.model_name,
                           backend=engine.backend, prompt_tokens=spent.prompt_tokens,
                           completion_tokens=spent.completion_tokens)  # fmt: skip
        if not done:
            _settle(job_id, attempt, spent, engine)
        return done

    if with_database(fail, f"failing job {job_id}"):
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


def _generate(job: Job, engine, max_words: int | None, spent: Spent, on_delta=None):
    """Ask the engine for the job's candidates and shape them for the template's output format.

    Candidates that miss the contract (a headline of the wrong length or a repeat, Python that does not
    parse, an empty reply) are replaced by further sampled rounds, seeded from the job's seed so a replay
    gives the same result. If rounds run out (or the job's time does), the best available candidates are kept.
    """
    from ..engine import EngineError, GenerationRequest, GenerationTimeout

    version = job.template_version
    fmt = version.output_format
    if _documents_python(version, job.inputs):
        return _generate_docstrings(job, engine, spent)  # the code is shown when complete: nothing to stream
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
        cancelled=events.CancelFlag(job.pk),
    )
    good: list[tuple[str, str]] = []
    spare: list[tuple[str, str]] = []
    total_s = 0.0
    first_timings = None
    out_of_time = False
    for round_no in range(top_up_rounds(fmt) + 1):
        if round_no:
            if request.cancelled():
                break
            request.seed = (p["seed"] + round_no) % prompts.MAX_SEED
            request.n = min(2 * (want - len(good)), settings.AIGC["MAX_CANDIDATES"])
            request.temperature = max(p["temperature"], 0.7)  # greedy decoding would repeat the same text
        # The first round streams; later rounds only replace candidates that missed the contract.
        try:
            result = spent.generate(engine, request, on_delta if round_no == 0 else None, again=round_no > 0)
        except GenerationTimeout:
            if round_no == 0:
                raise
            out_of_time = True  # the job's time is up: keep what the earlier rounds made
            break
        first_timings = first_timings or result.timings
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
    timings = {**first_timings, "total_s": round(total_s, 4), **({"time_limit_reached": True} if out_of_time else {})}
    return [t for t, _ in outputs], [r for _, r in outputs], timings


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


def _generate_docstrings(job: Job, engine, spent: Spent):
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
    docs, total_s = {}, 0.0
    cancelled = events.CancelFlag(job.pk)
    for i, fn in enumerate(functions):
        messages = docstring_messages(version, job.inputs, fn)
        for attempt in range(DOCSTRING_TRIES):  # an empty sentence is sampled again (seeded, so replays match)
            if cancelled():
                raise EngineError("Cancelled.")
            result = spent.generate(engine, GenerationRequest(
                messages=messages, max_new_tokens=docstring_tokens(p), cancelled=cancelled,
                temperature=p["temperature"] if attempt == 0 else max(p["temperature"], 0.7), top_p=p["top_p"],
                n=1, seed=(p["seed"] + 101 * i + attempt) % prompts.MAX_SEED, stop=["\n"],
            ))  # fmt: skip
            total_s += result.timings["total_s"]
            docs[fn.body_line] = shaping.clean_headline(shaping.strip_control(result.texts[0]))
            if codeedit.as_docstring(docs[fn.body_line]):
                break
    text = codeedit.insert_docstrings(code, docs) if functions else code
    return [text], ["stop"], {"total_s": round(total_s, 4), "functions": len(functions)}


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
