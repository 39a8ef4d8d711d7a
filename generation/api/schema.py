"""The OpenAPI schema: what generated clients and fuzzers rely on, stable while templates change.

- A job body is one object for every template: `kind` or `template` (a slug), `inputs` as an object of strings
  and numbers, `params`, `desk`, `label`, `version`, `callback_url`. A template's own inputs are listed by
  GET /api/v1/templates/ and checked when the job is created (errors name `inputs.<name>`), never enumerated
  here: a schema that listed today's templates would break every generated client when one changed.
- params are the known ones with this deployment's bounds (prompts.clean_params, settings AIGC).
- The views drf-spectacular cannot see (plain async Django views: the job's event stream and the
  OpenAI-compatible /v1/*) are added by `add_plain_views`, a postprocessing hook.
- StrictSerializer bodies refuse unknown fields: additionalProperties false.
- Every operation documents the error envelope for the 4xx it can answer.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent

from ..content import prompts
from .serializers import ErrorSerializer, StrictSerializer

SLUG = "^[-a-zA-Z0-9_]+$"


class ApiSchema(AutoSchema):
    """drf-spectacular's AutoSchema, plus: additionalProperties false for strict bodies, a required body where
    the view says so, and the error envelope on every 4xx an operation can answer."""

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if isinstance(serializer, StrictSerializer) and direction == "request":
            schema["additionalProperties"] = False
        return schema

    def _get_request_body(self, direction="request"):
        body = super()._get_request_body(direction)
        if body is not None and getattr(self.view, "body_required", False):
            body["required"] = True
        return body

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, description in self._error_codes():
            if code not in responses or "content" not in responses[code]:
                described = responses.get(code, {}).get("description") or description
                responses[code] = {
                    **self._get_response_for_code(ErrorSerializer, code, direction=direction),
                    "description": described,
                }
        return dict(sorted(responses.items()))

    def _error_codes(self) -> list[tuple[str, str]]:
        codes = [("401", "No valid API key or session."), ("403", "Not allowed.")]
        if self.method != "GET" or self.get_override_parameters():
            codes.append(("400", "A bad request: `param` and `fields` name what is at fault."))
        if "{" in self.path:
            codes.append(("404", "No such object, or not yours."))
        if self.method in ("POST", "PUT", "PATCH"):
            codes.append(("413", "The request body is too large."))
        if getattr(self.view, "throttle_classes", None):
            codes.append(("429", "A rate limit or the daily token quota; Retry-After says when to retry."))
        return codes


def params_schema() -> dict:
    """prompts.clean_params' rules, with this deployment's caps."""
    stop = {"type": "string", "minLength": 1, "maxLength": 64}
    return {
        "type": "object",
        "additionalProperties": False,
        "description": "Generation parameters; each one left out takes the template's default.",
        "properties": {
            "max_new_tokens": {"type": "integer", "minimum": 1, "maximum": settings.AIGC["MAX_NEW_TOKENS"]},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2, "description": "0: greedy."},
            "top_p": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1},
            "n": {
                "type": "integer",
                "minimum": 1,
                "maximum": settings.AIGC["MAX_CANDIDATES"],
                "description": "Candidates.",
            },
            "seed": {
                "type": "integer",
                "minimum": 0,
                "maximum": prompts.MAX_SEED,
                "nullable": True,
                "description": "Null or left out: a random one, recorded with the job.",
            },
            "stop": {
                "oneOf": [stop, {"type": "array", "items": stop, "maxItems": prompts.MAX_STOP}],
                "description": "Generation stops before any of these strings.",
            },
        },
    }


INPUTS = {
    "type": "object",
    "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "number"}]},
    "description": "Values for the template's variables, by name: GET /api/v1/templates/{slug}/ lists them (type, "
    "required, max_length, min/max, choices). Checked against the version that runs: an error names `inputs.<name>`.",
}


def job_create_schema(auto_schema) -> dict:
    """One object for every template: the template's own inputs are checked when the job is created, not
    enumerated here, so a client generated from this schema goes on working when a template changes."""
    params = ResolvedComponent(
        name="JobParams", type=ResolvedComponent.SCHEMA, object="JobParams", schema=params_schema()
    )
    auto_schema.registry.register_on_missing(params)
    return {
        "type": "object",
        "additionalProperties": False,
        "description": "A job: a `kind` (its default template) or a `template` slug, with that template's inputs. "
        "Give a version or a label, not both. Unknown fields are refused; every error names its field.",
        "properties": {
            "kind": {
                "allOf": [{"$ref": "#/components/schemas/KindEnum"}],  # the job's `kind` (ENUM_NAME_OVERRIDES)
                "description": "Runs that kind's default template; with `template`, must be the template's kind.",
            },
            "template": {
                "type": "string",
                "pattern": SLUG,
                "description": "A template's slug (GET /api/v1/templates/).",
            },
            "inputs": INPUTS,
            "params": params.ref,
            "desk": {
                "type": "string",
                "pattern": SLUG,
                "description": "One of your desks (its slug); default: the key's desk, else your own. "
                "Its budgets hold the job, its reviewers review it.",
            },
            "version": {
                "type": "integer",
                "minimum": 1,
                "description": "Pin a version of the template (not with label).",
            },
            "label": {
                "type": "string",
                "pattern": SLUG,
                "description": "Run the version a label points at (not with version); default production.",
            },
            "callback_url": {
                "type": "string",
                "format": "uri",
                "pattern": "^https?://",
                "maxLength": 2000,
                "description": "POSTed the job's JSON when it ends, signed; needs an API key.",
            },
        },
    }


class JobCreateSchema(OpenApiSerializerExtension):
    target_class = "generation.api.serializers.JobCreateSerializer"

    def map_serializer(self, auto_schema, direction):
        return job_create_schema(auto_schema)


class BatchJobsSchema(OpenApiSerializerExtension):
    target_class = "generation.api.serializers.BatchJobsSerializer"

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["properties"]["jobs"]["maxItems"] = settings.AIGC["MAX_BATCH_JOBS"]
        return schema


# The upload form of a batch, written out rather than a component: schemathesis (and some client generators)
# send a `format: binary` property as a file part only when they see it directly.
BATCH_FILE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["file"],
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": (
                "A CSV (columns kind or template, version, label, callback_url, params.<name>, any other column an input; "
                "the header is row 1) or JSONL file (one job body a line). Larger than AIGC_MAX_BATCH_FILE_BYTES: 413, unread."
            ),
        }
    },
}


# --- the plain views: the job's event stream and the OpenAI-compatible API ------------------------------------
# drf-spectacular documents DRF views only; these are async Django views (an open stream holds no thread), so
# their operations are written out here and added to the generated schema by `add_plain_views`.

ERROR_REF = {"$ref": "#/components/schemas/Error"}
BEARER = [{"ApiKey": []}]


def _error(description: str, ref: dict = ERROR_REF) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def _json(ref: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


SSE_DESCRIPTION = """A job's progress as server-sent events (`text/event-stream`). Each event carries `id:` (its
stream entry, `<ms>-<seq>`; `db-<n>` and `db-end` when the text comes from the database), `event:` and one JSON
`data:` line (a client ignores the event types it does not know):

- `delta`: `{"index": <candidate>, "text": "<new text>", "tokens": <the candidate's tokens so far>}` (`tokens`
  while it runs). Joining the deltas of an index gives that candidate's text.
- `replace`: `{"index": <candidate>, "text": "<its whole text>"}`: checks or house style changed text already
  streamed (or a reader resuming after the stream expired gets the stored text): replace, do not append.
- `discard`: `{"index": <candidate>, "reason": "grounding|chatter|contract|language|repeat|..."}`: a first-round
  candidate the checks refused (show it greyed); a later `delta`/`replace` of that index is its replacement.
- `status`: `{"phase": "resampling", "round": 1, "of": 4, "rejected": [2, 4], "missing": 2, "want": 5}`: refused
  candidates are being re-written.
- `progress`: `{"round": 1, "tokens": 212}`: the job's tokens so far while a re-sampling round runs.
- `done`: `{"status": "succeeded|cancelled"}`: the last event.
- `error`: `{"status": "failed", "error": "<why>"}`: the last event of a failed job.

Lines starting with `:` are comments: `: waiting` every keep-alive while nothing happens, and `: closed: <code>:
<why>` with a `retry:` when the stream must stop before the job ends (its maximum lifetime, a revoked key, Redis
unreachable): reconnect with `Last-Event-ID` to go on. A reconnecting reader gets exactly the events after the id
it sends. Opening a stream counts as a request against the rate limit; each user has a few streams open at most."""

SSE_EXAMPLE = (
    'id: 1732352400000-0\nevent: delta\ndata: {"index": 0, "text": "Council approves", "tokens": 2}\n\n'
    'id: 1732352400000-1\nevent: delta\ndata: {"index": 0, "text": " new bridge", "tokens": 4}\n\n'
    'id: 1732352400000-2\nevent: done\ndata: {"status": "succeeded"}\n\n'
)

JOB_EVENTS = {
    "get": {
        "operationId": "v1_jobs_events",
        "summary": "Stream a job's text as server-sent events (resumable with Last-Event-ID)",
        "description": SSE_DESCRIPTION,
        "tags": ["v1"],
        "security": BEARER,
        "parameters": [
            {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}},
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "Resume after this event (the `id:` of the last one read); EventSource sends it itself.",
            },
            {
                "name": "last_event_id",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "The same as the header, for clients that cannot set one.",
            },
        ],
        "responses": {
            "200": {
                "description": "The event stream: `delta` and `replace` events, then `done` or `error`.",
                "content": {"text/event-stream": {"schema": {"type": "string"}, "example": SSE_EXAMPLE}},
            },
            "400": _error("Last-Event-ID is not an event id of this stream (`param` says Last-Event-ID)."),
            "401": _error("No valid API key or session."),
            "404": {"description": "No such job, or not yours."},
            "429": _error("Too many requests a minute, or too many open streams; Retry-After says when to retry."),
        },
    }
}

_OPENAI_COMMON = {
    "model": {"type": "string", "description": "A model id of GET /v1/models."},
    "n": {"type": "integer", "minimum": 1, "default": 1, "description": "Choices (candidates)."},
    "max_tokens": {"type": "integer", "minimum": 1, "nullable": True},
    "max_completion_tokens": {"type": "integer", "minimum": 1, "nullable": True, "description": "As max_tokens."},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2, "nullable": True},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
    "stop": {
        "nullable": True,
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        "description": "Generation stops before any of these strings.",
    },
    "seed": {"type": "integer", "minimum": 0, "nullable": True},
    "stream": {
        "type": "boolean",
        "default": False,
        "description": "Answer as server-sent events: `data: <chunk JSON>` lines, then `data: [DONE]`.",
    },
    "stream_options": {
        "type": "object",
        "nullable": True,
        "properties": {"include_usage": {"type": "boolean"}},
        "description": "`include_usage`: a last chunk with the usage.",
    },
}
_USAGE = {
    "type": "object",
    "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
    "properties": {k: {"type": "integer"} for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
}
_FINISH = {"type": "string", "enum": ["stop", "length"], "nullable": True}


def _openai_answer(kind: str, choice: dict) -> dict:
    return {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices"],
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "enum": [kind]},
            "created": {"type": "integer", "description": "Unix time."},
            "model": {"type": "string"},
            "system_fingerprint": {"type": "string", "nullable": True, "description": "The weights' hash, shortened."},
            "choices": {"type": "array", "items": choice},
            "usage": _USAGE,
        },
    }


OPENAI_COMPONENTS = {
    "OpenAIError": {
        "type": "object",
        "required": ["error"],
        "description": "The API's error envelope as OpenAI's errors read: `code` and `param` may be null.",
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "code", "param"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "code": {"type": "string", "nullable": True},
                    "param": {"type": "string", "nullable": True},
                    "fields": {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    },
                },
            }
        },
    },
    "ChatMessage": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string", "enum": ["system", "user", "assistant"]},
            "content": {
                "oneOf": [
                    {"type": "string"},
                    {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["type", "text"],
                            "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}},
                        },
                    },
                ],
                "description": "Text, or text content parts (no images).",
            },
        },
    },
    "ChatCompletionRequest": {
        "type": "object",
        "required": ["model", "messages"],
        "description": "OpenAI's chat request; fields not listed (tools, logprobs, response_format...) are ignored.",
        "properties": {
            **_OPENAI_COMMON,
            "messages": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/ChatMessage"}},
        },
    },
    "CompletionRequest": {
        "type": "object",
        "required": ["model", "prompt"],
        "description": "OpenAI's completion request; the prompt goes through the model's chat template.",
        "properties": {
            **_OPENAI_COMMON,
            "prompt": {
                "oneOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "minItems": 1, "maxItems": 1, "items": {"type": "string", "minLength": 1}},
                ],
                "description": "One prompt (a list of one is taken too).",
            },
        },
    },
    "ChatCompletion": _openai_answer(
        "chat.completion",
        {
            "type": "object",
            "required": ["index", "message", "finish_reason"],
            "properties": {
                "index": {"type": "integer"},
                "message": {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {
                        "role": {"type": "string", "enum": ["assistant"]},
                        "content": {"type": "string", "nullable": True},
                    },
                },
                "logprobs": {"type": "object", "nullable": True},
                "finish_reason": _FINISH,
            },
        },
    ),
    "Completion": _openai_answer(
        "text_completion",
        {
            "type": "object",
            "required": ["index", "text", "finish_reason"],
            "properties": {
                "index": {"type": "integer"},
                "text": {"type": "string"},
                "logprobs": {"type": "object", "nullable": True},
                "finish_reason": _FINISH,
            },
        },
    ),
    "ModelList": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "object", "created", "owned_by"],
                    "properties": {
                        "id": {"type": "string", "description": "A registry alias, or the model's name."},
                        "object": {"type": "string", "enum": ["model"]},
                        "created": {"type": "integer"},
                        "owned_by": {"type": "string"},
                    },
                },
            },
        },
    },
}

OPENAI_ERROR = {"$ref": "#/components/schemas/OpenAIError"}
_OPENAI_ERRORS = {
    code: _error(description, OPENAI_ERROR)
    for code, description in {
        "400": "A bad request: `param` names the field (OpenAI's names: max_tokens, n, ...).",
        "401": "No valid API key (these endpoints take only a bearer key), or it was revoked while waiting.",
        "404": "No such model (`code`: model_not_found).",
        "408": "The answer took longer than a stream may live (`code`: stream_lifetime).",
        "409": "The job was cancelled before it ended.",
        "413": "The request body is too large.",
        "429": "A rate limit, a quota or a budget (`code` says which); Retry-After says when to retry.",
        "500": "The job failed (`code`: failed).",
        "503": "The job's stream could not be read (`code`: stream_unavailable); retry.",
    }.items()
}


def _openai_post(operation_id: str, summary: str, request: str, answer: str) -> dict:
    stream = (
        "With `stream: true`: server-sent events, each `data: <a chunk JSON>` (object `chat.completion.chunk` or "
        "`text_completion`, choices with `delta.content` or `text`), then `data: [DONE]`. An error after the "
        '200 comes as `data: {"error": {...}}`.'
    )
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "tags": ["openai"],
            "security": BEARER,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}},
            },
            "responses": {
                "200": {
                    "description": "The whole answer; " + stream,
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{answer}"}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                **_OPENAI_ERRORS,
            },
        }
    }


OPENAI_PATHS = {
    "/v1/models": {
        "get": {
            "operationId": "openai_models",
            "summary": "The models you may name (OpenAI-compatible)",
            "tags": ["openai"],
            "security": BEARER,
            "responses": {
                "200": _json("#/components/schemas/ModelList", "The served models."),
                "401": _OPENAI_ERRORS["401"],
                "429": _OPENAI_ERRORS["429"],
            },
        }
    },
    "/v1/chat/completions": _openai_post(
        "openai_chat_completions",
        "Chat completion (OpenAI-compatible; runs as a job of the `chat` template)",
        "ChatCompletionRequest",
        "ChatCompletion",
    ),
    "/v1/completions": _openai_post(
        "openai_completions",
        "Text completion (OpenAI-compatible; the prompt goes through the model's chat template)",
        "CompletionRequest",
        "Completion",
    ),
}


def add_plain_views(result, generator, request, public):
    """A postprocessing hook (SPECTACULAR_SETTINGS): the event stream and the /v1/* operations, with their
    components, in the schema drf-spectacular generated."""
    paths = result.setdefault("paths", {})
    paths["/api/v1/jobs/{job_id}/events/"] = JOB_EVENTS
    paths.update(OPENAI_PATHS)
    result.setdefault("components", {}).setdefault("schemas", {}).update(OPENAI_COMPONENTS)
    result["paths"] = dict(sorted(paths.items()))
    return result
