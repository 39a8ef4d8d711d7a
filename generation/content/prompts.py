"""Turning a template and a user's inputs into chat messages, and validating inputs and params. Pure.

Substitution is deliberately plain: `{name}` is replaced by the input called `name`, in one pass, so text a
user types (which may itself contain braces) is never evaluated or substituted again. No attribute or index
access, no template engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# `{name.attr}` or `{name[0]}`: refused in templates, so nobody expects a template engine behind the braces.
ACCESS = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\s*[.\[]")
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


VARIABLE_TYPES = ("text", "number", "choice")
# A variable's label and help may carry a translation per studio language: "label_zh-hans", "help_zh-hans".
TRANSLATED_KEYS = ("label", "help")
TRANSLATED_LANGUAGES = ("zh-hans",)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _clean_value(spec: dict, value) -> tuple[object, str | None]:
    """One input against its declared type; returns (value, error message or None)."""
    kind = spec.get("type", "text")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None, "Must be a number." if kind == "number" else "Must be text."
    if kind == "number":
        try:
            number = float(value)
        except ValueError:
            return None, "Must be a number."
        if number != number or number in (float("inf"), float("-inf")):
            return None, "Must be a finite number."
        number = int(number) if number.is_integer() else number
        low, high = spec.get("min"), spec.get("max")
        if (low is not None and number < low) or (high is not None and number > high):
            return None, f"Must be between {low if low is not None else '-∞'} and {high if high is not None else '∞'}."
        return number, None
    value = str(value).strip()
    if "\x00" in value:
        return None, "Must not contain NUL characters."
    limit = spec.get("max_length")
    if limit and len(value) > limit:
        return None, f"At most {limit} characters (got {len(value)})."
    if kind == "choice" and value not in spec.get("choices", []):
        return None, f"Must be one of: {', '.join(spec.get('choices', []))}."
    return value, None


def clean_inputs(variables: list[dict], inputs: object) -> dict[str, object]:
    """Check inputs against the template's declared variables; fill defaults. Collects every error at once:
    missing, unknown, wrongly typed and oversized inputs are each named."""
    if not isinstance(inputs, dict):
        raise InvalidInput({"inputs": ["Must be an object mapping variable names to values."]})
    declared = {v["name"]: v for v in variables}
    errors: dict[str, list[str]] = {}
    for key in inputs:
        if key not in declared:
            errors[f"inputs.{key}"] = [f"Unknown input; this template takes: {', '.join(declared) or 'nothing'}."]
    cleaned: dict[str, object] = {}
    for name, spec in declared.items():
        value = inputs.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if spec.get("required"):
                errors[f"inputs.{name}"] = ["This field is required."]
                continue
            value = spec.get("default", "")
            if value in ("", None):
                cleaned[name] = ""
                continue
        value, error = _clean_value(spec, value)
        if error:
            errors[f"inputs.{name}"] = [error]
        else:
            cleaned[name] = value
    if errors:
        raise InvalidInput(errors)
    return cleaned


MAX_STOP = 4


def _stop_strings(errors: dict, value) -> list[str]:
    """Up to four strings at which generation stops (the text before them is kept)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if (
        not isinstance(items, list)
        or not all(isinstance(s, str) and s and len(s) <= 64 for s in items)
        or len(items) > MAX_STOP
    ):
        errors["params.stop"] = [
            f"A string or a list of at most {MAX_STOP} non-empty strings of at most 64 characters."
        ]
        return []
    return items


def check_variables(variables: object, texts: dict[str, str], length_variable: str = "") -> None:
    """Validate a version's declared variables and that its texts use only declared placeholders."""
    errors: dict[str, list[str]] = {}
    if not isinstance(variables, list) or not all(isinstance(v, dict) for v in variables):
        raise InvalidInput({"variables": ["Must be a list of objects."]})
    seen = set()
    allowed_keys = {
        "name",
        "type",
        "label",
        "required",
        "default",
        "max_length",
        "min",
        "max",
        "choices",
        "multiline",
        "help",
        *(f"{key}_{lang}" for key in TRANSLATED_KEYS for lang in TRANSLATED_LANGUAGES),
    }
    for i, spec in enumerate(variables):
        where = f"variables.{i}"
        name = spec.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            errors[f"{where}.name"] = ["A name of letters, digits and underscores, not starting with a digit."]
            continue
        if name in seen:
            errors[f"{where}.name"] = [f"{name!r} is declared twice."]
        seen.add(name)
        unknown = sorted(set(spec) - allowed_keys)
        if unknown:
            errors[where] = [f"Unknown keys: {', '.join(unknown)}."]
        kind = spec.get("type", "text")
        if kind not in VARIABLE_TYPES:
            errors[f"{where}.type"] = [f"One of {', '.join(VARIABLE_TYPES)}."]
            continue
        if kind == "choice" and not (isinstance(spec.get("choices"), list) and spec["choices"]):
            errors[f"{where}.choices"] = ["A choice variable needs a non-empty list of choices."]
            continue
        limits = _limit_errors(spec, where)
        errors.update(limits)
        default = spec.get("default")
        if default not in (None, "") and not limits:  # a default is checked against limits that make sense
            _, error = _clean_value(spec, default)
            if error:
                errors[f"{where}.default"] = [error]
    for field, text in texts.items():
        undeclared = sorted(set(placeholders(text)) - seen)
        if ACCESS.search(text):
            errors[field] = ["Only plain {name} placeholders: attribute and index access are not supported."]
        elif undeclared:
            errors[field] = [f"Uses undeclared variables: {', '.join(undeclared)}."]
    if length_variable:
        spec = next((v for v in variables if v.get("name") == length_variable), None)
        if spec is None or spec.get("type") != "number":
            errors["length_variable"] = ["Must name a declared number variable."]
    if errors:
        raise InvalidInput(errors)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN is not


def _limit_errors(spec: dict, where: str) -> dict[str, list[str]]:
    """Limits no input could meet, or that would break the input checks of every job later: a max_length that is
    not a whole number of characters, a min or max that is not a number, a min above its max."""
    errors: dict[str, list[str]] = {}
    limit = spec.get("max_length")
    if limit is not None and not (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1):
        errors[f"{where}.max_length"] = ["A whole number of characters, at least 1."]
    low, high = spec.get("min"), spec.get("max")
    for key, value in (("min", low), ("max", high)):
        if value is not None and not _is_number(value):
            errors[f"{where}.{key}"] = ["Must be a number."]
    if _is_number(low) and _is_number(high) and low > high:
        errors[f"{where}.min"] = [f"Must not be above the maximum ({high})."]
    return errors


def render(text: str, values: dict[str, object]) -> str:
    """Replace each `{name}` with its value in a single pass; unknown placeholders are left as written."""
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text)


def render_messages(system_prompt: str, user_template: str, values: dict[str, object]) -> list[dict]:
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
    known = ("max_new_tokens", "temperature", "top_p", "n", "seed", "stop")
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
    if "stop" in params:
        stop = _stop_strings(errors, params["stop"])
        if stop:
            cleaned["stop"] = stop
    if errors:
        raise InvalidInput(errors)
    return cleaned
