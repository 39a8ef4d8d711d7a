"""Each task's contract, as checks on a finished job's outputs. Pure; used by `manage.py template_contracts`
to measure how often the default model meets them, and by tests.

- headline: n distinct single lines within the headline format's word bounds (formats.py);
- summary: shorter than its source and within its word budget;
- code: parses, and does what was asked (the sample's own checks pass when run);
- writing: within the writing length rule (formats.py: half to one and a half times the asked length).
"""

from __future__ import annotations

import ast

from .. import sandbox
from . import formats
from .shaping import count_words


def check_headlines(outputs: list[str], n: int) -> list[str]:
    headline = formats.FORMATS["headline"]
    problems = []
    if len(outputs) != n:
        problems.append(f"{len(outputs)} headlines, not {n}")
    if len(headline.keep_distinct(outputs)) != len(outputs):
        problems.append("repeats")
    for o in outputs:
        problems += headline.problems(o)
    return problems


def check_summary(output: str, source: str, budget: int) -> list[str]:
    words, source_words = count_words(output), count_words(source)
    problems = []
    if not output.strip():
        problems.append("empty")
    if words >= source_words:
        problems.append(f"{words} words, not shorter than the source's {source_words}")
    if words > budget:
        problems.append(f"{words} words, over the budget of {budget}")
    return problems


def check_length(output: str, asked: int) -> list[str]:
    words, (low, high) = count_words(output), formats.length("writing").bounds(asked)
    if not low <= words <= high:
        return [f"{words} words for {asked} asked (allowed {low}-{high})"]
    return []


NEEDS_SANDBOX = "code checks need a sandbox"


def check_python(code: str, test: str = "") -> list[str]:
    """Parse the code and, when a test is given, run code plus test in the sandbox (generation/sandbox: model
    output and a dataset's test are untrusted; never run bare, never in this process). Where no sandbox can start
    the code is not run, and the one problem says so: an unverified program never passes."""
    try:
        ast.parse(code)
    except SyntaxError as exc:
        return [f"does not parse: {exc.msg} (line {exc.lineno})"]
    if not test:
        return []
    outcome = sandbox.run_python(code + "\n\n" + test)
    if outcome.status == "passed":
        return []
    if outcome.status == "unavailable":
        return [f"{NEEDS_SANDBOX} (not run: {outcome.reason})"]
    if outcome.status == "timeout":
        return [f"timed out: {outcome.reason}"]
    return [f"check failed: {outcome.reason[:200]}"]


def check_docstrings(code: str) -> list[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return [f"does not parse: {exc.msg}"]
    functions = [f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
    missing = [f.name for f in functions if not ast.get_docstring(f)]
    if not functions:
        return ["no function left in the code"]
    return [f"no docstring: {', '.join(missing)}"] if missing else []


def check_explanation(output: str, budget: int, must_mention: str) -> list[str]:
    problems = []
    if count_words(output) > budget:
        problems.append(f"{count_words(output)} words, over the budget of {budget}")
    if must_mention.casefold() not in output.casefold():
        problems.append(f"does not mention {must_mention!r}")
    if not output.strip():
        problems.append("empty")
    return problems
