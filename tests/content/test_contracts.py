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


def test_python_contract_runs_the_check_in_another_process():
    assert contracts.check_python("def add(a, b):\n    return a + b", "assert add(2, 3) == 5") == []
    assert contracts.check_python("def add(a, b):\n    return a - b", "assert add(2, 3) == 5") == [
        "check failed: AssertionError"
    ]
    assert contracts.check_python("def add(a, b) return a + b")[0].startswith("does not parse")
    assert contracts.check_python("while True: pass", "", timeout=1) == []  # not run without a check
    assert contracts.check_python("import time\ntime.sleep(5)", "pass", timeout=0.5) == ["timed out"]


def test_docstring_contract():
    assert contracts.check_docstrings('def f():\n    """Do it."""\n    return 1') == []
    assert contracts.check_docstrings("def f():\n    return 1") == ["no docstring: f"]
