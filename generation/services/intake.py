"""Taking a job in: validate it against its template version, render its prompt, reserve what it can use
against the owner's quota, save it queued and send it once committed."""

from __future__ import annotations

import functools
import logging
import secrets

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from .. import selectors
from ..content import checks, codeedit, formats, prompts
from ..content.formats import DOCSTRING_TRIES, docstring_messages, docstring_tokens, documents_python, word_budget
from ..infra import registry
from ..models import Desk, Job, JobPurpose, Kind, PromptTemplate, TemplateVersion
from . import budgets, dispatch, limits
from .desks import desk_for_job
from .templates import param_limits, resolve_version
from .webhooks import callback_url_check

log = logging.getLogger("generation.jobs")


def _resolve_template(kind: str | None, template_slug: str | None, desk: Desk | None = None) -> PromptTemplate:
    """The template a job runs, among those its desk may use (selectors.desk_templates: the shared ones and the
    desk's own; another desk's is as unknown as a slug that does not exist, even to a member of both). Without a
    desk (evaluation jobs, run for curators), any template."""
    usable = selectors.desk_templates(desk) if desk is not None else PromptTemplate.objects.all()
    where = f" on the {desk.name} desk" if desk is not None else ""
    if template_slug:
        template = usable.filter(slug=template_slug).first()
        if template is None:
            raise ValidationError({"template": [f"Unknown template {template_slug!r}{where}."]})
        if kind and kind != template.kind:
            raise ValidationError({"kind": [f"Template {template_slug!r} is for {template.kind!r}, not {kind!r}."]})
        return template
    if not kind:
        raise ValidationError({"kind": ["Give a kind (writing, summary, headline or code) or a template."]})
    if kind not in Kind.values:
        raise ValidationError({"kind": [f"Unknown kind {kind!r}; choose one of {', '.join(Kind.values)}."]})
    template = selectors.template_default_for_kind(kind, desk=desk)
    if template is None:
        raise ValidationError({"kind": [f"No default template is set up for {kind!r}{where}."]})
    return template


def _house_messages(version: TemplateVersion, inputs: dict, desk: Desk) -> list[dict]:
    """The prompt with the desk's house style layered under the version's own rules. A style that does not fit
    the version (set before the version was made) refuses the job naming the desk and the template."""
    try:
        checks.parse(checks.with_house_style(version.checks, desk.style))
    except prompts.InvalidInput as exc:
        said = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.errors.items())
        raise ValidationError(
            {
                "desk": [
                    f"The house style of {desk.name} does not fit template {version.template.slug!r} "
                    f"v{version.number}: {said}. Ask the desk's admin to change it."
                ]
            }
        ) from None
    return checks.version_messages(version, inputs, house=desk.style)


def _check_context(alias: str, messages: list[dict], inputs: dict, max_new_tokens: int) -> int:
    """Refuse a prompt that cannot fit the model's context with room for the requested output; its tokens."""
    counter = selectors.prompt_counter(alias)
    if counter is None:  # not published (yet, or a remote engine): the engine or the remote server checks it
        return tokens_at_most(messages)
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


def _bad_input_is_named(create):
    """Any input the content layer refuses (prompts.InvalidInput) is a ValidationError naming its field: a 400,
    never a 500, wherever in the job's intake it is found."""

    @functools.wraps(create)
    def wrapped(*args, **kwargs):
        try:
            return create(*args, **kwargs)
        except prompts.InvalidInput as exc:
            raise ValidationError(exc.errors) from None

    return wrapped


@_bad_input_is_named
def job_create(
    *,
    user,
    kind=None,
    template=None,
    version=None,
    label=None,
    inputs=None,
    params=None,
    messages=None,
    api_key=None,
    callback_url="",
    idempotency_key="",
    request_hash="",
    batch=None,
    model_alias=None,
    purpose=JobPurpose.USER,
    desk=None,
    rerun_of: Job | None = None,
) -> Job:
    """Validate, render the prompt, check the user's token quota, save the job as queued and, once committed,
    send it to a worker. `messages` (the OpenAI-compatible API) replaces the rendered prompt, and `model_alias`
    the template version's model. An evaluation job (`purpose`, services/evaluation.py) is not held against the
    owner's quota: it is the studio's work, not theirs; it spends the organisation's evaluation pool instead.
    `desk` (a slug) files the job under one of the user's desks (else the key's, else the user's own), whose
    budgets it is held against; `job.budget_notices` then says which of them are nearly spent. `rerun_of`: the
    job this one runs again (a replay, a regeneration or edited inputs), linked from the new job's page.

    Raises django ValidationError whose keys name each field at fault ("inputs.text", "params.n", ...), or
    limits.LimitExceeded; nothing is written then.
    """
    if callback_url:
        callback_url_check(callback_url)  # a 400 naming callback_url for a plainly internal or plain-http target
    filed = _desk(user, desk, api_key, purpose)
    tpl = _resolve_template(kind, template, filed if purpose == JobPurpose.USER else None)
    tv = resolve_version(tpl, version=version, label=label, desk=filed)
    if purpose == JobPurpose.USER and not selectors.adapter_version_runnable(tv, user=user, desk=filed):
        raise ValidationError(
            {
                "version": [
                    f"v{tv.number} of {tpl.slug!r} runs with a LoRA adapter that no label points at yet: until it "
                    "is released, only template curators may run it."
                ]
            }
        )
    try:
        cleaned_inputs = prompts.clean_inputs(tv.variables, inputs if inputs is not None else {})
        cleaned_params = prompts.clean_params(params, tv.default_params, param_limits())
    except prompts.InvalidInput as exc:
        raise ValidationError(exc.errors) from None
    budget = word_budget(tv, cleaned_inputs)
    if budget and "max_new_tokens" not in (params or {}):
        asked = formats.length(tpl.kind).max_new_tokens(budget)
        cleaned_params["max_new_tokens"] = min(param_limits().max_new_tokens, asked)
    if cleaned_params["seed"] is None:
        # Record the seed the job will use, so that "run again" replays it exactly.
        cleaned_params["seed"] = secrets.randbelow(prompts.MAX_SEED)
    if messages is None:
        messages = _house_messages(tv, cleaned_inputs, filed)
    alias = model_alias or tv.model_alias
    if alias not in registry.aliases():
        raise ValidationError({"model": [f"Unknown model {alias!r}; configured: {', '.join(registry.aliases())}."]})
    if tv.adapter_sha256 and registry.entry(alias)["backend"] not in registry.ADAPTER_BACKENDS:
        raise ValidationError(
            {"model": [f"v{tv.number} of {tpl.slug!r} runs with a LoRA adapter, which {alias!r} does not serve."]}
        )
    prompt_tokens = _check_context(alias, messages, cleaned_inputs, cleaned_params["max_new_tokens"])
    if documents_python(tv, cleaned_inputs):
        reserved = _docstrings_reservation(tv, cleaned_inputs, cleaned_params, alias)
    else:
        reserved = most_tokens(tv.output_format, cleaned_params, prompt_tokens)
    with transaction.atomic():
        # Checked and inserted under one lock: concurrent requests cannot together pass a quota or a budget.
        budgets.lock(filed)
        if purpose == JobPurpose.USER:
            limits.lock_user(user)
            limits.check_token_quota(user, reserved)
        standing = budgets.check(filed, user, reserved, purpose)
        job = Job.objects.create(
            desk=filed,
            house_style=filed.style,
            purpose=purpose,
            reserved_tokens=reserved,
            owner=user,
            kind=tpl.kind,
            template=tpl,
            template_version=tv,
            adapter_sha256=tv.adapter_sha256,
            inputs=cleaned_inputs,
            params=cleaned_params,
            messages=messages,
            model_alias=alias,
            api_key=api_key,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            batch=batch,
            rerun_of=rerun_of,
        )
        transaction.on_commit(lambda: dispatch.job_enqueue(job.pk, alias))
    job.budget_notices = selectors.budget_notices(standing)
    return job


def _desk(user, desk: str | None, api_key, purpose: str) -> Desk:
    """A user's job goes to one of their desks; an evaluation job (the studio's work, run for a curator who may
    belong to none) to the curator's desk or the default one, for the organisation whose pool it spends."""
    if purpose == JobPurpose.USER:
        return desk_for_job(user, desk, api_key)
    try:
        return desk_for_job(user, desk)
    except ValidationError:
        found = selectors.default_desk()
        if found is None:
            raise ValidationError({"desk": ["No default desk is set up for evaluation jobs."]}) from None
        return found


def evaluation_desk(user) -> Desk:
    """The desk `user`'s evaluation jobs are filed under: its organisation's evaluation pool pays for them."""
    return _desk(user, None, None, JobPurpose.EVALUATION)


def most_tokens(output_format: str, params: dict, prompt_tokens: int) -> int:
    """The most a job can use: its prompt, its first round (n candidates), then every re-sampling round at its
    widest (twice the candidates still missing, up to MAX_CANDIDATES)."""
    n, rounds = params["n"], formats.spec(output_format).top_up_rounds
    widest = min(2 * n, settings.AIGC["MAX_CANDIDATES"])
    return prompt_tokens + params["max_new_tokens"] * (n + rounds * widest)


def tokens_at_most(messages: list[dict]) -> int:
    """A prompt's tokens when no tokenizer is at hand (a remote engine): no tokenizer makes more tokens than
    UTF-8 bytes, plus the chat template's few per message."""
    return sum(len(str(m.get("content", "")).encode()) + 8 for m in messages) + 8


def _docstrings_reservation(version: TemplateVersion, inputs: dict, params: dict, alias: str) -> int:
    """Documenting code is one model call per undocumented function (and up to DOCSTRING_TRIES each): refuse
    code with more functions than a job may take, and reserve what all those calls can use."""
    try:
        functions = codeedit.undocumented_functions(inputs.get("code", ""))
    except SyntaxError as exc:
        raise ValidationError({"inputs.code": [f"Does not parse as Python (line {exc.lineno}: {exc.msg})."]}) from None
    cap = settings.AIGC["MAX_FUNCTIONS_PER_JOB"]
    if len(functions) > cap:
        raise ValidationError(
            {
                "inputs.code": [
                    f"{len(functions)} functions lack a docstring; a job documents at most {cap}. Split the code."
                ]
            }
        )
    counter = selectors.prompt_counter(alias)
    total = 0
    for fn in functions:
        messages = docstring_messages(version, inputs, fn)
        prompt = counter.count(messages) if counter is not None else tokens_at_most(messages)
        total += DOCSTRING_TRIES * (prompt + docstring_tokens(params))
    return total


def job_rerun(job: Job, *, user) -> Job:
    """Replay: a new job with the same template version, inputs, params and seed, on the same desk: the same text
    again (for a check that a run reproduces), held against the same budgets."""
    return _again(job, user=user, params=job.params)


def job_regenerate(job: Job, *, user) -> Job:
    """Regenerate: as job_rerun but with a new random seed, so the candidates are new variations."""
    params = {**job.params, "seed": secrets.randbelow(prompts.MAX_SEED)}
    while params["seed"] == job.params.get("seed"):  # one chance in MAX_SEED, but "new" must mean new
        params["seed"] = secrets.randbelow(prompts.MAX_SEED)
    return _again(job, user=user, params=params)


def _again(job: Job, *, user, params: dict) -> Job:
    """The job run again by its owner with these params, linked to it (rerun_of)."""
    if job.owner_id != user.pk:
        raise PermissionDenied
    return job_create(
        user=user,
        template=job.template.slug,
        version=job.template_version.number,
        inputs=job.inputs,
        params=params,
        desk=job.desk.slug,
        rerun_of=job,
    )
