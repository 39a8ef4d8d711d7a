"""Adding docstrings to Python code without touching anything else. Pure.

The model is asked only for each function's one-sentence description; placing it is done here, through the
syntax tree, so the result always parses and behaves exactly as the original code.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass


@dataclass(frozen=True)
class Undocumented:
    name: str
    source: str
    body_line: int  # 1-based line where the function's body starts
    indent: str


def undocumented_functions(code: str) -> list[Undocumented]:
    """Functions (and methods) without a docstring, in source order. Raises SyntaxError for invalid code."""
    tree = ast.parse(code)
    lines = code.splitlines()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(node) is None:
            first = node.body[0]
            if first.lineno == node.lineno:  # `def f(): return 1` on one line: leave it alone
                continue
            body_text = lines[first.lineno - 1]
            indent = body_text[: len(body_text) - len(body_text.lstrip())]
            found.append(Undocumented(node.name, ast.get_source_segment(code, node) or "", first.lineno, indent))
    return sorted(found, key=lambda f: f.body_line)


def as_docstring(sentence: str) -> str:
    """A one-line docstring body: a single sentence, no quotes that could end the literal early."""
    text = " ".join(sentence.split()).strip().strip("\"'`").strip()
    text = text.replace("\\", "\\\\").replace('"""', "'''")
    if text and text[-1] not in ".!?":
        text += "."
    return text[:1].upper() + text[1:]


def insert_docstrings(code: str, docs: dict[int, str]) -> str:
    """Insert `docs` (body line -> sentence) as docstrings; bottom-up so line numbers stay valid."""
    lines = code.splitlines()
    functions = {f.body_line: f for f in undocumented_functions(code)}
    for body_line in sorted(docs, reverse=True):
        fn = functions.get(body_line)
        text = as_docstring(docs[body_line])
        if fn is None or not text:
            continue
        lines.insert(body_line - 1, f'{fn.indent}"""{text}"""')
    result = "\n".join(lines) + ("\n" if code.endswith("\n") else "")
    ast.parse(result)  # never hand back code that does not parse
    return result
