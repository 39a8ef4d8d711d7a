"""What an output format means for generation: re-sampling rounds, word bounds, how a word budget becomes a
token budget, how code gets its docstrings. Pure: no Django, no engine."""

from __future__ import annotations

from . import prompts

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
TRIM_RATIO = {"writing": 1.5}
SUMMARY_MAX_SHARE = 0.8
PYTHON = ("python", "py", "python3")


def top_up_rounds(output_format: str) -> int:
    """Re-sampling rounds after the first, for candidates that miss the contract."""
    return TOP_UP_ROUNDS.get(output_format, 1)


def word_budget(version, inputs: dict) -> int | None:
    """The words asked for, when the template version has a length input and it is set."""
    value = inputs.get(version.length_variable) if version.length_variable else None
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


def documents_python(version, inputs: dict) -> bool:
    """Docstrings placed through Python's syntax tree (the model never rewrites the code)."""
    return version.output_format == "docstrings" and str(inputs.get("language", "python")).lower() in PYTHON


def docstring_messages(version, inputs: dict, fn) -> list[dict]:
    """The prompt of one function's docstring: the template rendered with that function as `code`."""
    return prompts.render_messages(version.system_prompt, version.user_template, {**inputs, "code": fn.source})


def docstring_tokens(params: dict) -> int:
    return min(params["max_new_tokens"], DOCSTRING_MAX_TOKENS)
