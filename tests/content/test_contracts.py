from dataclasses import replace

from generation import sandbox
from generation.content import contracts


def test_headlines_contract():
    good = ["Council Approves New Bridge", "Elm River Bridge Gets Green Light", "City Votes for $40M Bridge"]
    assert contracts.check_headlines(good, 3) == []
    assert contracts.check_headlines(good[:2], 3) == ["2 headlines, not 3"]
    assert contracts.check_headlines(["Bridge", good[0], good[0].upper()], 3) == ["repeats", "1 words: 'Bridge'"]


def test_summary_contract():
    source = "one two three four five six seven eight nine ten"
    assert contracts.check_summary("one two three", source, 5) == []
    assert contracts.check_summary("one two three four five six", source, 5) == ["6 words, over the budget of 5"]
    assert "not shorter" in contracts.check_summary(source, source, 50)[0]


def test_length_contract():
    assert contracts.check_length("word " * 60, 100) == []
    assert contracts.check_length("word " * 40, 100) == ["40 words for 100 asked (allowed 50-150)"]


def test_python_contract_runs_the_check_in_the_sandbox(sandbox_config):
    assert contracts.check_python("def add(a, b):\n    return a + b", "assert add(2, 3) == 5") == []
    assert contracts.check_python("def add(a, b):\n    return a - b", "assert add(2, 3) == 5") == [
        "check failed: AssertionError"
    ]
    assert contracts.check_python("def add(a, b) return a + b")[0].startswith("does not parse")
    assert contracts.check_python("while True: pass", "") == []  # not run without a check
    # A model's code that reads the worker's secrets finds none (the sandbox hands it an empty environment).
    leak = "import os\nassert 'DJANGO_SECRET_KEY' not in os.environ and 'DATABASE_URL' not in os.environ"
    assert contracts.check_python("x = 1", leak) == []
    sandbox_config(limits=replace(sandbox.current().limits, deadline_s=0.5))
    assert contracts.check_python("import time\ntime.sleep(5)", "pass") == ["timed out: killed at the 0.5 s deadline"]


def test_python_contract_without_a_sandbox_runs_nothing_and_says_so(sandbox_config, tmp_path):
    sandbox_config(bwrap="/nonexistent/bwrap")
    marker = tmp_path / "ran"
    problems = contracts.check_python("def add(a, b):\n    return a + b", f"open({str(marker)!r}, 'w')")
    assert problems == [
        "code checks need a sandbox (not run: bubblewrap is not installed ('/nonexistent/bwrap' not found))"
    ]
    assert not marker.exists()
    # Code that does not parse is still reported as such: parsing runs nothing.
    assert contracts.check_python("def (", "pass")[0].startswith("does not parse")


def test_docstring_contract():
    assert contracts.check_docstrings('def f():\n    """Do it."""\n    return 1') == []
    assert contracts.check_docstrings("def f():\n    return 1") == ["no docstring: f"]
