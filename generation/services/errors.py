"""A refusal written on one line, the same way wherever a person reads it (commands, admin notices, the API's
message, an evaluation case that was not accepted)."""

from collections.abc import Iterable, Mapping

from django.core.exceptions import ValidationError


def error_line(error: ValidationError | Mapping[str, Iterable[str]]) -> str:
    """Each message after the field it names ("inputs.text: This field is required."), fields joined by "; "."""
    if isinstance(error, ValidationError):
        if not hasattr(error, "error_dict"):
            return "; ".join(error.messages)
        error = error.message_dict
    return "; ".join(f"{field}: {' '.join(str(m) for m in messages)}" for field, messages in error.items())
