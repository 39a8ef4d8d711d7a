"""Turning a template and a user's inputs into chat messages, and validating inputs and params. Pure.

Substitution is deliberately plain: `{name}` is replaced by the input called `name`, in one pass, so text a
user types (which may itself contain braces) is never evaluated or substituted again. No attribute or index
access, no template engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_SEED = 2**31 - 1


class InvalidInput(ValueError):
    """Bad inputs or params; `errors` maps each field at fault (e.g. "inputs.text") to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


@dataclass(frozen=True)
class ParamLimits:
    max_new_tokens: int = 1024
    max_candidates: int = 8


def placeholders(text: str) -> list[str]:
    return PLACEHOLDER.findall(text)


def clean_inputs(variables: list[dict], inputs: object) -> dict[str, str]:
    """Check inputs against the template's declared variables; fill defaults. Collects every error at once."""
    if not isinstance(inputs, dict):
        raise InvalidInput({"inputs": ["Must be an object mapping variable names to text."]})
    declared = {v["name"]: v for v in variables}
    errors: dict[str, list[str]] = {}
    for key in inputs:
        if key not in declared:
            errors[f"inputs.{key}"] = [f"Unknown input; this template takes: {', '.join(declared) or 'nothing'}."]
    cleaned: dict[str, str] = {}
    for name, spec in declared.items():
        value = inputs.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if spec.get("required"):
                errors[f"inputs.{name}"] = ["This field is required."]
                continue
            value = spec.get("default", "")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            errors[f"inputs.{name}"] = ["Must be text."]
            continue
        value = str(value).strip()
        limit = spec.get("max_length")
        if limit and len(value) > limit:
            errors[f"inputs.{name}"] = [f"At most {limit} characters (got {len(value)})."]
            continue
        choices = spec.get("choices")
        if choices and value and value not in choices:
            errors[f"inputs.{name}"] = [f"Must be one of: {', '.join(choices)}."]
            continue
        cleaned[name] = value
    if errors:
        raise InvalidInput(errors)
    return cleaned


def render(text: str, values: dict[str, str]) -> str:
    """Replace each `{name}` with its value in a single pass; unknown placeholders are left as written."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def render_messages(system_prompt: str, user_template: str, values: dict[str, str]) -> list[dict]:
    messages = []
    if system_prompt.strip():
        messages.append({"role": "system", "content": render(system_prompt, values).strip()})
    messages.append({"role": "user", "content": render(user_template, values).strip()})
    return messages


def _number(errors, params, name, *, integer, low, high, low_open=False):
    value = params[name]
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        errors[f"params.{name}"] = [f"Must be {'an integer' if integer else 'a number'}."]
        return None
    if value < low or value > high or (low_open and value == low):
        lower = f"greater than {low}" if low_open else f"at least {low}"
        errors[f"params.{name}"] = [f"Must be {lower} and at most {high}."]
        return None
    return value if integer else float(value)


def clean_params(params: object, defaults: dict, limits: ParamLimits) -> dict:
    """Merge the template's defaults with the request's params and check each against its range."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidInput({"params": ["Must be an object."]})
    known = ("max_new_tokens", "temperature", "top_p", "n", "seed")
    errors: dict[str, list[str]] = {}
    for key in params:
        if key not in known:
            errors[f"params.{key}"] = [f"Unknown parameter; allowed: {', '.join(known)}."]
    merged = {"max_new_tokens": 256, "temperature": 0.7, "top_p": 0.95, "n": 1, "seed": None}
    merged.update({k: v for k, v in defaults.items() if k in known})
    merged.update({k: v for k, v in params.items() if k in known})
    if "max_new_tokens" not in params:  # a template default above this deployment's cap is clamped, not refused
        merged["max_new_tokens"] = min(merged["max_new_tokens"], limits.max_new_tokens)
    checks = {
        "max_new_tokens": dict(integer=True, low=1, high=limits.max_new_tokens),
        "temperature": dict(integer=False, low=0, high=2),
        "top_p": dict(integer=False, low=0, high=1, low_open=True),
        "n": dict(integer=True, low=1, high=limits.max_candidates),
    }
    cleaned = {}
    for name, rule in checks.items():
        if f"params.{name}" not in errors:
            cleaned[name] = _number(errors, merged, name, **rule)
    if merged["seed"] is not None:
        cleaned["seed"] = _number(errors, merged, "seed", integer=True, low=0, high=MAX_SEED)
    else:
        cleaned["seed"] = None
    if errors:
        raise InvalidInput(errors)
    return cleaned
