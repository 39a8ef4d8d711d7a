"""Running a claimed job on a worker: the claim and its fencing token, the candidate rounds under one deadline,
usage settled on every end, and the final state saved with the callback it owes."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from ..content import checks, codeedit, formats, prompts, shaping
from ..content.formats import DOCSTRING_TRIES, docstring_messages, docstring_tokens, documents_python, word_budget
from ..infra import events, logs, metrics
from ..infra.registry import ADAPTER_BACKENDS
from ..models import FINAL_STATUSES, Adapter, Job, JobOutput, JobStatus
from .reconcile import runnable
from .webhooks import webhook_enqueue

log = logging.getLogger("generation.jobs")

# A worker that lost its database connection (PostgreSQL restarted, a failover, a proxy dropped an idle
# connection while the model ran) waits this long in all, on fresh connections, before giving the job up
# to the reconciler: minutes of generated text are not thrown away for a hiccup.
DATABASE_RETRY_DELAYS_S = (0.2, 0.5, 1, 2, 4, 8, 15)


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
            with contextlib.suppress(Exception):  # closing a dead connection may fail; the next query opens a new one
                connection.close()
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
    from .evaluation import run_advance_for_job

    run_advance_for_job(job_id)  # an evaluation job's end measures it and sends its run's next case


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
        Job.objects.filter(pk=job_id).update(
            status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, attempts=attempt
        )
    return attempt


def _run_claimed(job_id, attempt: int, engine, engine_for) -> None:
    job = with_database(lambda: Job.objects.select_related("template_version").get(pk=job_id), f"loading job {job_id}")
    if attempt > 1:

        def count(messages: list[dict]) -> int:
            return (engine if engine is not None else engine_for(job.model_alias)).count_tokens(messages)

        with_database(lambda: _charge_lost_attempt(job, attempt, count), f"charging job {job.pk}'s lost attempt")
        events.reset(job.pk)
    if attempt > settings.AIGC["MAX_ATTEMPTS"]:
        _finish(
            job.pk,
            JobStatus.FAILED,
            attempt=attempt,
            error=f"Gave up after {attempt - 1} attempts: the worker stopped each time.",
        )
        return
    engine = engine if engine is not None else engine_for(job.model_alias)
    from ..engine import EngineError

    log.info("job %s: running (%s, attempt %d)", job.pk, job.kind, attempt)
    version = job.template_version
    max_words = _max_words(job)
    output_format = formats.spec(version.output_format)
    streamer = events.JobStreamer(job.pk, lambda raw: output_format.shaped(raw, "stop", max_words))
    spent = Spent(settings.CELERY_TASK_SOFT_TIME_LIMIT)
    try:
        with _adapter(job, engine) as adapter:
            outputs, timings, refused = _generate(job, engine, adapter, max_words, spent, streamer)
    except EngineError as exc:
        log.warning("job %s failed: %s", job.pk, exc)
        _fail(job.pk, attempt, str(exc), engine, spent)
        return
    except Exception as exc:  # the worker lives on; the user gets a readable reason
        log.exception("job %s failed", job.pk)
        _fail(job.pk, attempt, f"Generation failed: {type(exc).__name__}: {exc}", engine, spent)
        return
    streamer.finish([c.text for c in outputs])
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
                rejections=refused,
                findings=sum(not f.fixed for c in outputs for f in c.findings),
            )
            if done:
                _outputs_create(job.pk, outputs)
        if done:
            return JobStatus.SUCCEEDED
        # Not done: cancelled meanwhile (it pays for what it generated and keeps what it wrote), re-claimed by
        # another worker, or saved by an earlier try whose answer the dropped connection lost.
        _settle(job.pk, attempt, spent, engine, kept=Kept(outputs, timings, refused))
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


def _charge_lost_attempt(job: Job, attempt: int, count_prompt) -> int:
    """The attempt before this one lost its worker mid-run: what it used, as far as its token stream tells (the
    prompt, read once any delta was streamed, counted by `count_prompt`, and each candidate's tokens streamed),
    is added to the job's `lost_tokens`, which budgets and usage charge. Read before the stream is reset for this
    attempt. Returns the tokens charged."""
    streamed = events.streamed_tokens(job.pk)
    if not streamed:
        return 0
    try:
        prompt = count_prompt(job.messages)
    except Exception:  # an engine that cannot count it (a remote one, or none loads): what is known is the deltas
        log.warning("job %s: could not count the lost attempt's prompt", job.pk, exc_info=True)
        prompt = 0
    lost = prompt + streamed
    Job.objects.filter(pk=job.pk, attempts=attempt).update(lost_tokens=F("lost_tokens") + lost)
    log.warning("job %s: charged %d tokens its previous attempt used before its worker stopped", job.pk, lost)
    return lost


def _outputs_create(job_id, outputs: list[Candidate]) -> None:
    JobOutput.objects.bulk_create(
        JobOutput(
            job_id=job_id,
            index=i,
            text=c.text,
            finish_reason=c.finish_reason,
            checks=[f.as_json() for f in c.findings],
            score=c.score,
        )
        for i, c in enumerate(outputs)
    )


@dataclass
class Kept:
    """What a run had written when it was cancelled: kept on the job, with the checks' word on it."""

    outputs: list[Candidate]
    timings: dict
    refused: dict


@transaction.atomic
def _settle(job_id, attempt: int, spent: Spent, engine, kept: Kept | None = None) -> None:
    """Record the usage of a run that ended without completing (cancelled, failed), unless another claim of
    the job owns it now. A job cancelled while it ran keeps the text written so far (`kept`): its outputs, a
    candidate cut by the cancel marked with finish_reason "cancelled". Safe to repeat (a retried save)."""
    settled = Job.objects.filter(pk=job_id, attempts=attempt, status__in=FINAL_STATUSES).update(
        prompt_tokens=spent.prompt_tokens,
        completion_tokens=spent.completion_tokens,
        model_name=engine.model_name,
        backend=engine.backend,
    )
    if not settled or kept is None or not kept.outputs:
        return
    # The update above holds the row's lock: the status read here stays true until this commits.
    cancelled = Job.objects.filter(pk=job_id, attempts=attempt, status=JobStatus.CANCELLED)
    if not cancelled.exists() or JobOutput.objects.filter(job_id=job_id).exists():
        return
    cancelled.update(
        weights_sha256=engine.weights_sha256,
        timings=kept.timings,
        rejections=kept.refused,
        findings=sum(not f.fixed for c in kept.outputs for f in c.findings),
    )
    _outputs_create(job_id, kept.outputs)


def _fail(job_id, attempt: int, error: str, engine, spent: Spent) -> None:
    def fail() -> bool:
        with transaction.atomic():
            done = _finish(
                job_id,
                JobStatus.FAILED,
                attempt=attempt,
                error=error,
                model_name=engine.model_name,
                backend=engine.backend,
                prompt_tokens=spent.prompt_tokens,
                completion_tokens=spent.completion_tokens,
            )
        if not done:
            _settle(job_id, attempt, spent, engine)
        return done

    if with_database(fail, f"failing job {job_id}"):
        events.publish_end(job_id, JobStatus.FAILED, error)
    elif Job.objects.filter(pk=job_id, attempts=attempt, status=JobStatus.CANCELLED).exists():
        events.publish_end(job_id, JobStatus.CANCELLED)  # cancelled while running: no one else ends its stream


@contextlib.contextmanager
def _adapter(job: Job, engine):
    """The name the engine serves the job's LoRA adapter under (None: the base model), attached on first use and
    held while the job runs; an engine keeps at most AIGC_MAX_ATTACHED_ADAPTERS attached, detaching the least
    recently used one no job holds. The adapter is found by its sha256 under the model cache and checked
    against it: replay stays exact."""
    if not job.adapter_sha256:
        yield None
        return
    from ..engine import EngineError, lora

    adapter = Adapter.objects.filter(sha256=job.adapter_sha256).first()
    if adapter is None:
        raise EngineError(f"The LoRA adapter {job.adapter_sha256[:12]} of this version is not known here.")
    if engine.backend not in ADAPTER_BACKENDS:
        raise EngineError(f"This version runs with a LoRA adapter, which the {engine.backend} backend does not serve.")
    with lora.serving(
        engine,
        adapter.sha256[:16],
        Path(settings.AIGC["MODEL_CACHE_DIR"]) / adapter.path,
        expected_sha256=adapter.sha256,
        keep=settings.AIGC["MAX_ATTACHED_ADAPTERS"],
    ) as name:
        yield name


@dataclass
class Candidate:
    """One shaped candidate, with what the checks found on it and where it ranks."""

    text: str
    finish_reason: str
    findings: list = field(default_factory=list)
    score: float | None = None
    streamed: int | None = None  # the index it streamed under (first round only)


def _generate(job: Job, engine, adapter: str | None, max_words: int | None, spent: Spent, streamer=None):
    """Ask the engine for the job's candidates, shape them for the template's output format and check them.

    Candidates that miss the contract (a headline of the wrong length or a repeat, Python that does not
    parse, an empty reply) or that the checks refuse (a claim the source does not back, another language than
    asked) are replaced by further sampled rounds, seeded from the job's seed so a replay gives the same result.
    If rounds run out (or the job's time does), the best available candidates are kept. Returns the candidates
    (ranked, for formats with several), the timings, and how many were refused, by why.

    `streamer` (events.JobStreamer) streams the first round's text. Readers then learn which streamed candidates
    were refused (`discard`), that others are being written (`status`), and the tokens of those rounds
    (`progress`): their text is never shown, since it has not been checked yet.
    """
    from ..engine import EngineError, GenerationRequest, GenerationTimeout

    version = job.template_version
    fmt = formats.spec(version.output_format)
    if documents_python(version, job.inputs):
        return _generate_docstrings(job, engine, adapter, spent)  # shown when complete: nothing to stream
    p = job.params
    want = p["n"]
    budget = word_budget(version, job.inputs)
    language = str(job.inputs.get("language", "python"))
    wanted = checks.parse(checks.with_house_style(version.checks, job.house_style))
    # A reply shorter than its kind allows (writing: half the asked length) is sampled again.
    min_words = formats.length(job.kind).min_words(budget)
    request = GenerationRequest(
        messages=job.messages,
        adapter=adapter,
        max_new_tokens=p["max_new_tokens"],
        temperature=p["temperature"],
        top_p=p["top_p"],
        n=want,
        seed=p["seed"],
        stop=[*fmt.stop, *p.get("stop", [])],
        cancelled=events.CancelFlag(job.pk),
    )
    good: list[Candidate] = []
    spare: list[Candidate] = []
    refused: Counter = Counter()
    total_s = 0.0
    first_timings = None
    out_of_time = False
    discarded: list[int] = []
    for round_no in range(fmt.top_up_rounds + 1):
        if round_no:
            if request.cancelled():
                break
            request.seed = (p["seed"] + round_no) % prompts.MAX_SEED
            request.n = min(2 * (want - len(good)), settings.AIGC["MAX_CANDIDATES"])
            request.temperature = max(p["temperature"], 0.7)  # greedy decoding would repeat the same text
        # The first round streams; later rounds only replace candidates that missed the contract.
        on_delta = None
        if streamer is not None:
            on_delta = streamer.on_delta if round_no == 0 else streamer.counter(round_no, spent.completion_tokens)
        try:
            result = spent.generate(engine, request, on_delta, again=round_no > 0)
        except GenerationTimeout:
            if round_no == 0:
                raise
            out_of_time = True  # the job's time is up: keep what the earlier rounds made
            break
        first_timings = first_timings or result.timings
        total_s += result.timings["total_s"]
        judged: list[tuple[Candidate, str | None]] = []
        for i, (text, reason) in enumerate(zip(result.texts, result.finish_reasons, strict=True)):
            verdict = checks.review(wanted, fmt, job.kind, fmt.shaped(text, reason, max_words=max_words), job.inputs)
            candidate = Candidate(verdict.text, reason, verdict.findings, streamed=None if round_no else i)
            why = verdict.rejected
            if why is None and not fmt.acceptable(verdict.text, language=language, min_words=min_words):
                why = "contract"
            (spare if why else good).append(candidate)
            refused.update([why] if why else [])
            judged.append((candidate, why))
        kept = _distinct(fmt, good)
        refused["repeat"] += len(good) - len(kept)
        good = kept
        if len(good) >= want:
            break
        if streamer is not None and round_no < fmt.top_up_rounds and not request.cancelled():
            discarded += _discard(streamer, judged, kept) if round_no == 0 else []
            missing = want - len(good)
            streamer.status(
                "resampling", round=round_no + 1, of=fmt.top_up_rounds, rejected=discarded, missing=missing, want=want
            )
    outputs = list(good)
    for candidate in spare:  # rounds ran out: keep the best of the rest rather than return fewer
        if len(outputs) >= want:
            break
        if candidate.text.strip():
            outputs = _distinct(fmt, [*outputs, candidate])
    outputs = _ranked(fmt, outputs[:want])
    if not outputs:
        raise EngineError("The model produced no usable output; try again or change the inputs.")
    timings = {**first_timings, "total_s": round(total_s, 4), **({"time_limit_reached": True} if out_of_time else {})}
    return outputs, timings, {k: v for k, v in refused.items() if v}


def _discard(streamer, judged: list[tuple[Candidate, str | None]], kept: list[Candidate]) -> list[int]:
    """Tell readers which first-round candidates they saw were refused, and why; their indexes."""
    out = []
    for candidate, why in judged:
        if why or not any(candidate is k for k in kept):
            streamer.discard(candidate.streamed, why or "repeat")
            out.append(candidate.streamed)
    return out


def _ranked(fmt: formats.OutputFormat, outputs: list[Candidate]) -> list[Candidate]:
    """Several candidates are served best first (grounded, in style, near the ideal length, unlike the others);
    ties keep the order they were sampled in, so one seed gives one order."""
    if not fmt.many:
        return outputs
    texts = [c.text for c in outputs]
    for c in outputs:
        c.score = checks.score(fmt, checks.Verdict(c.text, c.findings), texts)
    return sorted(outputs, key=lambda c: -c.score)


def _max_words(job: Job) -> int | None:
    """The most words an output may keep, by the length rule of the job's kind."""
    return formats.length(job.kind).max_words(word_budget(job.template_version, job.inputs), job.inputs)


def _generate_docstrings(job: Job, engine, adapter: str | None, spent: Spent):
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
            result = spent.generate(
                engine,
                GenerationRequest(
                    messages=messages,
                    adapter=adapter,
                    max_new_tokens=docstring_tokens(p),
                    cancelled=cancelled,
                    temperature=p["temperature"] if attempt == 0 else max(p["temperature"], 0.7),
                    top_p=p["top_p"],
                    n=1,
                    seed=(p["seed"] + 101 * i + attempt) % prompts.MAX_SEED,
                    stop=["\n"],
                ),
            )
            total_s += result.timings["total_s"]
            docs[fn.body_line] = shaping.clean_headline(shaping.strip_control(result.texts[0]))
            if codeedit.as_docstring(docs[fn.body_line]):
                break
    text = codeedit.insert_docstrings(code, docs) if functions else code
    return [Candidate(text, "stop")], {"total_s": round(total_s, 4), "functions": len(functions)}, {}


def _distinct(fmt: formats.OutputFormat, candidates: list[Candidate]) -> list[Candidate]:
    """The candidates the format lets stand together (first occurrences, when they must differ)."""
    texts = fmt.keep_distinct([c.text for c in candidates])
    first = {}
    for c in candidates:
        first.setdefault(c.text, c)
    return [first[t] for t in texts]
