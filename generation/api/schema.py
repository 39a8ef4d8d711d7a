"""The OpenAPI schema as strict as the validation, so that generated clients and fuzzers send what is accepted.

- A job body is one of: a kind (its default template), or a template slug, each with that template's own
  inputs (names, types, lengths, ranges, choices and which are required), versions and labels; read from
  the database when the schema is generated, so it is the truth of this deployment at that moment (a version
  pinned by number may take other inputs than the production one the schema shows).
- params are the known ones with this deployment's bounds (prompts.clean_params, settings AIGC).
- StrictSerializer bodies refuse unknown fields: additionalProperties false.
- Every operation documents the error envelope for the 4xx it can answer.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent

from .. import selectors
from ..content import prompts
from ..models import Kind, TemplateLabel
from .serializers import ErrorSerializer, StrictSerializer

logger = logging.getLogger(__name__)

SLUG = "^[-a-zA-Z0-9_]+$"
NO_NUL = "^[^\\u0000]*$"
SOME_TEXT = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"  # a required input counts as missing when only whitespace


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


def _enum(kind: str, values: list) -> dict:
    """An enum kept where it is written: drf-spectacular's enum hook would hoist it into a shared component,
    and it mixes up same-named properties of oneOf branches (each branch's `kind` and `template` differ)."""
    return {"allOf": [{"type": kind, "enum": values}]}


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


def _input_schema(spec: dict) -> dict:
    kind = spec.get("type", "text")
    if kind == "number":
        schema = {"type": "number"}
        if spec.get("min") is not None:
            schema["minimum"] = spec["min"]
        if spec.get("max") is not None:
            schema["maximum"] = spec["max"]
    elif kind == "choice":
        schema = _enum("string", list(spec.get("choices") or []))
    else:
        schema = {"type": "string", "pattern": SOME_TEXT if spec.get("required") else NO_NUL}
        if spec.get("max_length"):
            schema["maxLength"] = spec["max_length"]
    description = " ".join(str(spec[k]) for k in ("label", "help") if spec.get(k))
    return {**schema, "description": description} if description else schema


def inputs_schema(variables: list[dict]) -> dict:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {v["name"]: _input_schema(v) for v in variables},
    }
    required = [v["name"] for v in variables if v.get("required")]
    return {**schema, "required": required} if required else schema


GENERIC_INPUTS = {
    "type": "object",
    "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "number"}]},
    "description": "Values for the template's variables (GET /api/v1/templates/{slug}/ lists them).",
}


def _common(params_ref: dict, versions: list[int] | None, labels: list[str] | None) -> dict:
    version = {"type": "integer", "minimum": 1, "description": "Pin a version of the template (not with label)."}
    label = {"type": "string", "pattern": SLUG, "description": "Run the version a label points at; default production."}
    return {
        "version": {**_enum("integer", versions), "description": version["description"]} if versions else version,
        "label": {**_enum("string", labels), "description": label["description"]} if labels else label,
        "params": params_ref,
        "callback_url": {
            "type": "string",
            "format": "uri",
            "pattern": "^https?://",
            "maxLength": 2000,
            "description": "POSTed the job's JSON when it ends, signed; needs an API key.",
        },
    }


def _branch(title: str, selector: dict, required: list[str], inputs: dict, common: dict) -> dict:
    required = required + (["inputs"] if inputs.get("required") else [])
    return {
        "type": "object",
        "title": title,
        "additionalProperties": False,
        "required": required,
        "properties": {**selector, "inputs": inputs, **common},
        "not": {"required": ["version", "label"]},  # "Give a version or a label, not both."
    }


def job_create_schema(auto_schema) -> dict:
    params = ResolvedComponent(
        name="JobParams", type=ResolvedComponent.SCHEMA, object="JobParams", schema=params_schema()
    )
    auto_schema.registry.register_on_missing(params)
    try:
        branches = _template_branches(params.ref)
    except DatabaseError:  # generated without a database (offline): the shape without the templates' details
        logger.warning("The job schema is generated without templates: the database cannot be read.")
        branches = []
    if not branches:
        common = _common(params.ref, None, None)
        kinds = {"kind": _enum("string", list(Kind.values))}
        branches = [
            _branch("By kind", kinds, ["kind"], GENERIC_INPUTS, common),
            _branch(
                "By template",
                {"template": {"type": "string", "pattern": SLUG}, **kinds},
                ["template"],
                GENERIC_INPUTS,
                common,
            ),
        ]
    return {
        "oneOf": branches,
        "description": "A job: a `kind` (its default template) or a `template` slug, with that template's inputs. "
        "Unknown fields are refused; every error names its field.",
    }


def _template_branches(params_ref: dict) -> list[dict]:
    kind_branches, template_branches = [], []
    # Shared templates only: the schema is public, and a desk's own templates are its members' alone.
    defaults = {
        kind: t.pk for kind in Kind.values if (t := selectors.template_default_for_kind(kind)) and not t.desk_id
    }
    for template in selectors.templates_listed().filter(desk__isnull=True).order_by("kind", "slug"):
        labels = {label.name: label.version for label in template.labels.all()}
        production = labels.get(TemplateLabel.PRODUCTION)
        if production is None:
            continue  # no job can run it without a version: left to the generic description
        inputs = inputs_schema(production.variables)
        common = _common(params_ref, [v.number for v in template.versions.all()], sorted(labels))
        kind = _enum("string", [template.kind])
        template_branches.append(
            _branch(
                f"Template {template.slug}",
                {"template": _enum("string", [template.slug]), "kind": kind},
                ["template"],
                inputs,
                common,
            )
        )
        if defaults.get(template.kind) == template.pk:
            kind_branches.append(
                _branch(f"Kind {template.kind} (template {template.slug})", {"kind": kind}, ["kind"], inputs, common)
            )
    return kind_branches + template_branches


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
