import ast

import pytest

from generation.content.codeedit import as_docstring, insert_docstrings, undocumented_functions

CODE = '''import math


def area(r):
    return math.pi * r * r


class Shape:
    def scale(self, k):
        """Already documented."""
        return k

    async def load(self):
        # comment first
        return None


def one(): return 1
'''


def test_finds_functions_without_docstrings():
    found = undocumented_functions(CODE)
    assert [(f.name, f.body_line, f.indent) for f in found] == [("area", 5, "    "), ("load", 15, "        ")]
    assert found[0].source == "def area(r):\n    return math.pi * r * r"


def test_inserts_docstrings_keeping_behaviour():
    docs = {5: "returns the area of a circle of radius r", 15: 'Loads "it" """ safely'}
    result = insert_docstrings(CODE, docs)
    tree = ast.parse(result)
    fns = {
        n.name: ast.get_docstring(n) for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    assert fns["area"] == "Returns the area of a circle of radius r."
    assert fns["load"] == "Loads \"it\" ''' safely."
    assert fns["scale"] == "Already documented."
    namespace = {}
    exec(compile(result, "<test>", "exec"), namespace)
    assert namespace["area"](1) == pytest.approx(3.14159, rel=1e-4)


def test_as_docstring_cleans_the_sentence():
    assert as_docstring('  "adds two numbers"  ') == "Adds two numbers."
    assert as_docstring("ends with a backslash \\") == "Ends with a backslash \\\\."


def test_invalid_code_is_a_syntax_error():
    with pytest.raises(SyntaxError):
        undocumented_functions("def broken(:\n")
