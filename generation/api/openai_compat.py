"""The OpenAI-compatible API: `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions`.

Editorial tools built on the `openai` client point its base_url at `/v1` and use a studio API key. Each request
runs as a job through the same path as every other (stored, in the user's history, under the user's limits)
with the `chat` template: the caller's messages go to the model as they are. Answers wait on the job's event
stream, so these are async views: a waiting or streaming request holds no server thread.

Differences from OpenAI's API, by design: `/v1/completions` applies the model's chat template to the prompt
(the served models are instruction-tuned); `logprobs`, tools and response formats are not offered.
"""

from __future__ import annotations

import json
import logging
import time

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from rest_framework import serializers

from .. import services
from ..content import safeparse
from ..infra import registry
from ..models import Job, ModelInfo
from ..services.limits import LimitExceeded, check_request_rate
from .authentication import key_from_header
from .errors import envelope, error_json, flatten
from .streams import StreamClosed, StreamGuard, event_stream_response, job_event_entries, too_many_streams

log = logging.getLogger("generation.openai")

# Our job fields -> the request fields an OpenAI client sent.
PARAM_NAMES = {
    "params.max_new_tokens": "max_tokens",
    "params.n": "n",
    "params.temperature": "temperature",
    "params.top_p": "top_p",
    "params.seed": "seed",
    "params.stop": "stop",
}
FINISH = {"stop": "stop", "length": "length", "cancelled": "stop"}


def _error(message: str, status: int, kind: str = "invalid_request_error", param=None, code=None, **extra):
    """The API's one envelope; these views choose only `type` and `code`, as OpenAI's own errors read."""
    return error_json(message, status, code, type=kind, param=param, **extra)


def _chunk_error(message: str, code: str) -> str:
    """An error inside a stream already answered 200, as OpenAI's streams report one."""
    return f"data: {json.dumps(envelope(message, type='server_error', code=code), ensure_ascii=False)}\n\n"


class Message(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant"])
    content = serializers.JSONField()

    def validate_content(self, value):
        if isinstance(value, list):  # content parts: only text is understood
            if not all(
                isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in value
            ):
                raise serializers.ValidationError("Only text content parts are supported.")
            value = "".join(p["text"] for p in value)
        if not isinstance(value, str):
            raise serializers.ValidationError("Must be a string.")
        return value


class _Common(serializers.Serializer):
    """Fields both endpoints share. Unknown fields are ignored, as OpenAI clients send optional ones freely."""

    model = serializers.CharField()
    n = serializers.IntegerField(required=False, default=1)
    max_tokens = serializers.IntegerField(required=False, allow_null=True)
    max_completion_tokens = serializers.IntegerField(required=False, allow_null=True)
    temperature = serializers.FloatField(required=False, allow_null=True)
    top_p = serializers.FloatField(required=False, allow_null=True)
    stop = serializers.JSONField(required=False, allow_null=True)
    seed = serializers.IntegerField(required=False, allow_null=True)
    stream = serializers.BooleanField(required=False, default=False)
    stream_options = serializers.DictField(required=False, allow_null=True)

    def params(self) -> dict:
        data = self.validated_data
        params = {"n": data["n"]}
        max_tokens = data.get("max_completion_tokens") or data.get("max_tokens")
        for name, value in (
            ("max_new_tokens", max_tokens),
            ("temperature", data.get("temperature")),
            ("top_p", data.get("top_p")),
            ("seed", data.get("seed")),
            ("stop", data.get("stop")),
        ):
            if value is not None:
                params[name] = value
        return params


class ChatRequest(_Common):
    messages = Message(many=True, allow_empty=False)


class CompletionRequest(_Common):
    prompt = serializers.JSONField()

    def validate_prompt(self, value):
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, str) or not value:
            raise serializers.ValidationError("One non-empty string (lists of several prompts are not supported).")
        return value


async def _authenticate(request):
    """(key, None) or (None, error response). Only bearer keys: these views are CSRF-exempt."""
    key = await sync_to_async(key_from_header)(request.headers.get("Authorization", ""))
    if key is None:
        return None, _error(
            "Invalid or missing API key: send `Authorization: Bearer <key>`.",
            401,
            "invalid_request_error",
            code="invalid_api_key",
        )
    try:
        await sync_to_async(check_request_rate)(key)
    except LimitExceeded as exc:
        return None, _limit_error(exc)
    return key, None


def _limit_error(exc: LimitExceeded):
    return _error(
        exc.message,
        429,
        "rate_limit_error" if exc.code == "rate_limit_exceeded" else "insufficient_quota",
        code=exc.code,
        headers={"Retry-After": str(exc.retry_after)},
        budget=exc.budget,
    )


def _model_ids() -> dict[str, str]:
    """The model ids clients may send, each with the alias it runs on: every alias of the registry, and the
    name of the model a worker published for it."""
    ids = {alias: alias for alias in registry.aliases()}
    for alias, name in ModelInfo.objects.filter(alias__in=list(ids)).order_by("alias").values_list("alias", "name"):
        if name:
            ids.setdefault(name, alias)
    return ids


@csrf_exempt
@require_GET
async def models(request):
    _key, error = await _authenticate(request)
    if error:
        return error
    ids = await sync_to_async(_model_ids)()
    return JsonResponse(
        {"object": "list", "data": [{"id": i, "object": "model", "created": 0, "owned_by": "aigc-studio"} for i in ids]}
    )


@csrf_exempt
@require_POST
async def chat_completions(request):
    return await _complete(request, ChatRequest, chat=True)


@csrf_exempt
@require_POST
async def completions(request):
    return await _complete(request, CompletionRequest, chat=False)


async def _complete(request, serializer_class, chat: bool):
    key, error = await _authenticate(request)
    if error:
        return error
    try:
        body = safeparse.loads(request.body or b"{}")
    except safeparse.JSONInputError as exc:
        if exc.syntax or not exc.where:
            return _error(f"The body is not valid JSON: {exc.msg}.", 400)
        return _error(f"{exc.where}: {exc.msg}", 400, param=exc.where)
    if not isinstance(body, dict):
        return _error("The body must be a JSON object.", 400)
    payload = serializer_class(data=body)
    if not payload.is_valid():
        fields = flatten(payload.errors)
        field, messages = next(iter(fields.items()))  # the first field at fault, dotted
        return _error(f"{field}: {' '.join(messages)}", 400, param=field, fields=fields)
    data = payload.validated_data
    alias = (await sync_to_async(_model_ids)()).get(data["model"])
    if alias is None:
        return _error(
            f"The model `{data['model']}` does not exist; GET /v1/models lists those served.",
            404,
            param="model",
            code="model_not_found",
        )
    messages = [dict(m) for m in data["messages"]] if chat else [{"role": "user", "content": data["prompt"]}]
    prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), messages[-1]["content"])
    guard = StreamGuard.for_key(key)  # a stream counts against the user's open streams (before a job is made)
    if data["stream"] and not await guard.take():
        return too_many_streams()
    try:
        job = await sync_to_async(services.job_create)(
            user=key.user,
            template="chat",
            inputs={"prompt": prompt or " "},
            messages=messages,
            params=payload.params(),
            api_key=key,
            model_alias=alias,
        )
    except ValidationError as exc:
        await guard.release()
        field, text = next(iter(exc.message_dict.items()))
        return _error(" ".join(text), 400, param=PARAM_NAMES.get(field, field))
    except LimitExceeded as exc:
        await guard.release()
        return _limit_error(exc)
    shape = _Shape(
        job, data["model"], chat, include_usage=bool((data.get("stream_options") or {}).get("include_usage"))
    )
    if data["stream"]:
        return event_stream_response(shape.stream(guard))
    try:  # the same lifetime, back-off and key re-check as a stream; an answer nobody can get is not run on
        async for entry in job_event_entries(job.pk, guard=guard):
            if entry is not None and entry[0] in ("done", "error"):
                break
    except StreamClosed as exc:
        await sync_to_async(_abandon)(job.pk)
        return _error(exc.message, exc.status, code=exc.code)
    final = await sync_to_async(_finished)(job.pk)
    if final.status != "succeeded":
        return _error(
            final.error or f"The job ended {final.status}.",
            500 if final.status == "failed" else 409,
            "server_error" if final.status == "failed" else "invalid_request_error",
            code=final.status,
        )
    return JsonResponse(shape.whole(final))


def _finished(job_id) -> Job:
    return Job.objects.prefetch_related("outputs").get(pk=job_id)


def _abandon(job_id) -> None:
    job = Job.objects.select_related("owner").get(pk=job_id)
    if services.job_cancel(job, user=job.owner):
        log.info("job %s: cancelled, its client left before the end", job_id)


class _Shape:
    """A job in OpenAI's response shapes: whole (chat.completion / text_completion) or as stream chunks."""

    def __init__(self, job, model: str, chat: bool, include_usage: bool) -> None:
        self.job, self.model, self.chat, self.include_usage = job, model, chat, include_usage
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{job.pk.hex}"
        self.created = int(job.created_at.timestamp()) if job.created_at else int(time.time())
        self.n = job.params.get("n", 1)

    def _usage(self, job) -> dict:
        p, c = job.prompt_tokens or 0, job.completion_tokens or 0
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    def _choice(self, index: int, text: str | None, finish: str | None, delta: bool = False) -> dict:
        if not self.chat:
            return {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
        if delta:
            return {
                "index": index,
                "delta": {} if text is None else {"content": text},
                "logprobs": None,
                "finish_reason": finish,
            }
        return {
            "index": index,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": finish,
        }

    def _envelope(self, chunk: bool, job=None) -> dict:
        """`job`: the freshest copy at hand (its weights hash is known once it ran)."""
        kind = ("chat.completion.chunk" if chunk else "chat.completion") if self.chat else "text_completion"
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": ((job or self.job).weights_sha256 or "")[:16] or None,
        }

    def whole(self, job) -> dict:
        choices = [self._choice(o.index, o.text, FINISH.get(o.finish_reason, "stop")) for o in job.outputs.all()]
        return {**self._envelope(False, job), "choices": choices, "usage": self._usage(job)}

    def _chunk(self, choices, usage=None) -> str:
        body = {**self._envelope(True), "choices": choices}
        if self.include_usage:
            body["usage"] = usage
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    async def stream(self, guard=None):
        """Deltas as they are written; each choice's finish_reason from the stored job; then [DONE]. A client that
        goes away before the end (as a worker relaying to this server does when its own job is cancelled) cancels
        the job: nobody is left to read it. So does a stream cut short (its lifetime, a revoked key): an error
        chunk says why, as OpenAI's streams report errors."""
        complete = False
        try:
            async for chunk in self._chunks(guard):
                yield chunk
            complete = True
        except StreamClosed as exc:
            yield _chunk_error(exc.message, exc.code)
        finally:
            if not complete:
                await sync_to_async(_abandon)(self.job.pk)

    async def _chunks(self, guard=None):
        sent: dict[int, str] = {}
        if self.chat:
            yield self._chunk(
                [
                    {"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
                    for i in range(self.n)
                ]
            )
        async for entry in job_event_entries(self.job.pk, guard=guard):
            if entry is None:
                yield ": waiting\n\n"
                continue
            event, data, _ = entry
            if event in ("done", "error"):
                break
            if event not in ("delta", "replace"):  # discard/status/progress: the job page's, no chunk says them
                continue
            item = json.loads(data)
            index, text = item["index"], item["text"]
            if event == "replace":  # a client cannot take text back: send only what extends what it has
                old = sent.get(index, "")
                text = text[len(old) :] if text.startswith(old) else ""
                sent[index] = old + text
            else:
                sent[index] = sent.get(index, "") + text
            if text:
                yield self._chunk([self._choice(index, text, None, delta=True)])
        job = await sync_to_async(_finished)(self.job.pk)
        if job.status == "failed":
            yield _chunk_error(job.error or "The job failed.", "failed")
        else:
            yield self._chunk(
                [
                    self._choice(o.index, None if self.chat else "", FINISH.get(o.finish_reason, "stop"), delta=True)
                    for o in job.outputs.all()
                ]
            )
            if self.include_usage:
                yield f"data: {json.dumps({**self._envelope(True), 'choices': [], 'usage': self._usage(job)})}\n\n"
        yield "data: [DONE]\n\n"
