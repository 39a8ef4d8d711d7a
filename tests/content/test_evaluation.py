"""What an evaluation measures per case, how cases add up, and how two runs compare: on hand-made outputs, so
every figure is known."""

import pytest

from generation.content import evaluation, formats
from generation.content.findings import Finding

HEADLINE = formats.FORMATS["headline"]
SOURCE = "The council voted on Tuesday to build a bridge over the Elm River for 40 million dollars."


def case(outputs, *, fmt=HEADLINE, kind="headline", n=2, budget=None, reference="", checks=None, **extra):
    return evaluation.measure(
        fmt=fmt,
        rule=formats.kind_rule(kind),
        outputs=[o if isinstance(o, dict) else {"text": o, "checks": []} for o in outputs],
        n=n,
        budget=budget,
        source=SOURCE if formats.kind_rule(kind).has_source else None,
        grounding_applies=formats.kind_rule(kind).has_source,
        reference=reference,
        case_checks=checks or {},
        **extra,
    )


def test_the_contract_follows_the_format_and_the_kind():
    assert case(["Council backs Elm River bridge", "Elm River gets a bridge"])["contract"] == {
        "ok": True,
        "problems": [],
    }
    short = case(["Bridge", "Council backs Elm River bridge"])["contract"]
    assert not short["ok"] and short["problems"] == ["1 words: 'Bridge'"]
    assert case(["Council backs bridge"], n=2)["contract"]["problems"] == ["1 candidates, not 2"]
    assert "repeats" in case(["Council backs bridge", "council backs bridge!"])["contract"]["problems"]
    text = formats.FORMATS["text"]
    summary = case(["The council will build a bridge."], fmt=text, kind="summary", n=1, budget=5)["contract"]
    assert summary["problems"] == ["6 words for 5 asked (allowed 0-5)"]
    writing = case(["Too short."], fmt=text, kind="writing", n=1, budget=20)["contract"]
    assert writing["problems"] == ["2 words for 20 asked (allowed 10-30)"]
    code = formats.FORMATS["code"]
    test = "assert add(2, 3) == 5"
    assert case(["def add(a, b):\n    return a + b"], fmt=code, kind="code", n=1, checks={"test": test})["contract"][
        "ok"
    ]
    wrong = case(["def add(a, b):\n    return a - b"], fmt=code, kind="code", n=1, checks={"test": test})["contract"]
    assert wrong["problems"][0].startswith("check failed: AssertionError")
    docs = formats.FORMATS["docstrings"]
    assert case(["def f():\n    return 1"], fmt=docs, kind="code", n=1)["contract"]["problems"] == ["no docstring: f"]
    assert case([], n=2)["contract"] == {"ok": False, "problems": ["empty"]}


def test_a_code_case_without_a_sandbox_fails_its_contract_and_says_why(sandbox_config):
    """An unverified program never passes a case: the gate cannot promote code nobody could run."""
    sandbox_config(bwrap="/nonexistent/bwrap")
    code = formats.FORMATS["code"]
    measured = case(
        ["def add(a, b):\n    return a + b"], fmt=code, kind="code", n=1, checks={"test": "assert add(2, 3) == 5"}
    )["contract"]
    assert not measured["ok"]
    assert measured["problems"][0].startswith("code checks need a sandbox (not run: bubblewrap is not installed")


def test_findings_facts_similarity_and_a_failed_job():
    unsupported = Finding("grounding", "year", 0, 4, "2030", 'The source gives no "2030".').as_json()
    styled = Finding("style", "banned", 0, 5, "Slams", "House style.").as_json()
    fixed = {**Finding("style", "case", 0, 5, "X", "fixed", fixed=True).as_json()}
    measured = case(
        [
            {"text": "2030 bridge backed by council", "checks": [unsupported]},
            {"text": "Slams and bridges for the Elm", "checks": [styled, fixed]},
        ],
        reference="Council backs Elm River bridge",
        checks={"required": ["Elm River"], "forbidden": ["slams"]},
        tokens=30,
        latency_s=1.234,
    )
    assert measured["grounding"] == {"applies": True, "ok": False, "findings": 1}
    assert measured["style"] == {"ok": False, "findings": 1}  # the fixed one is not counted
    # The first (top-ranked) output lacks "Elm River"; any output stating a forbidden fact counts.
    assert measured["facts"] == {"total": 2, "missing": ["Elm River"], "forbidden": ["slams"], "ok": False}
    assert 0 < measured["chrf"] < 100 and (measured["tokens"], measured["latency_s"]) == (30, 1.23)
    assert evaluation.similarity("Council backs Elm River bridge", "Council backs Elm River bridge") == 100.0
    assert evaluation.similarity("anything", "") is None
    failed = case([], error="The job ran past its time limit of 5 s.")
    assert failed["contract"] == {"ok": False, "problems": ["job failed: The job ran past its time limit of 5 s."]}
    assert "grounding" not in failed and "facts" not in failed


def metrics(contract=True, grounded=True, chrf=50.0, tokens=20, latency=1.0):
    return {
        "outputs": ["A headline here"],
        "error": "",
        "contract": {"ok": contract, "problems": [] if contract else ["1 words: 'A'"]},
        "grounding": {"applies": True, "ok": grounded, "findings": 0 if grounded else 1},
        "style": {"ok": True, "findings": 0},
        "chrf": chrf,
        "tokens": tokens,
        "latency_s": latency,
    }


def test_summaries_average_over_the_cases_each_metric_applies_to():
    summary = evaluation.summarise([metrics(), metrics(contract=False, chrf=None), {**metrics(), "grounding": None}])
    values = {k: v["value"] for k, v in summary["metrics"].items()}
    assert values["contract_rate"] == pytest.approx(2 / 3, abs=1e-4) and summary["metrics"]["chrf"]["cases"] == 2
    assert values["grounded_rate"] == 1.0 and summary["metrics"]["grounded_rate"]["cases"] == 2
    assert values["facts_rate"] is None and summary["cases"] == 3 and summary["failed"] == 0


def test_the_comparison_puts_regressions_first_and_ignores_latency_noise():
    base_cases = [metrics(), metrics()]
    cand_cases = [metrics(), {**metrics(contract=False, chrf=40.0), "outputs": ["A"]}]
    for c in cand_cases:
        c["latency_s"] = 1.4  # within the latency noise
    comparison = evaluation.compare(
        evaluation.summarise(base_cases),
        evaluation.summarise(cand_cases),
        [(0, {"text": "x"}, base_cases[0], cand_cases[0]), (1, {"text": "y"}, base_cases[1], cand_cases[1])],
    )
    keys = [r["key"] for r in comparison["metrics"]]
    assert keys[:2] == ["contract_rate", "chrf"] and all(r["regressed"] for r in comparison["metrics"][:2])
    latency = next(r for r in comparison["metrics"] if r["key"] == "latency_s")
    assert latency["delta"] == pytest.approx(0.4) and not latency["regressed"]
    assert [c["index"] for c in comparison["cases"]] == [1, 0]  # the worse case first
    assert comparison["cases"][0]["regressions"] == ["contract", "similarity"]
    assert comparison["cases"][0]["diff"] == [["same", "A"], ["del", " headline here"]]
    assert (comparison["regressed_cases"], comparison["identical_cases"]) == (1, 1)
