"""What an evaluation measures on one case's outputs, how a run's cases add up, and how a candidate run compares
with its baseline. Pure (no Django): services/evaluation.py hands in the job's outputs and the case.

Per case: the task contract (the format's and the kind's rules, formats.py, as contracts.py states them, plus
the case's own code test), the grounding and house-style findings the job stored with its outputs, the
required and forbidden facts of the case, chrF similarity to the reference (sacrebleu; the best candidate for a
format with several), tokens and latency. Per run: the rates and means in METRICS. A comparison lists every
metric with its change, regressions first, and every case side by side, the cases that got worse first.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from . import contracts, formats, shaping
from .diffing import word_diff


@functools.cache
def _chrf():
    # Imported here: sacrebleu is needed where runs are measured, not by every process importing content.
    from sacrebleu.metrics import CHRF

    return CHRF()  # chrF (character 6-grams, beta 2): robust for short texts and for Chinese, where words
    # have no spaces between them; 0-100


def similarity(output: str, reference: str) -> float | None:
    """chrF of `output` against `reference`, 0-100; None without a reference."""
    if not reference.strip():
        return None
    return round(_chrf().sentence_score(output, [reference]).score, 2)


def contract_problems(
    fmt: formats.OutputFormat,
    rule: formats.KindRule,
    outputs: Sequence[str],
    *,
    n: int,
    budget: int | None,
    source: str | None,
    test: str = "",
    language: str = "python",
) -> list[str]:
    """The task contract on one job's outputs, from the format's and the kind's specs: the candidates asked for
    (distinct where they must differ, each within the format's word bounds), the word budget read as the kind
    reads it, shorter than the source for a kind that condenses one, code that parses and passes the case's test,
    a docstring on every function for a format that documents code."""
    problems: list[str] = []
    if not outputs or not any(o.strip() for o in outputs):
        return ["empty"]
    if fmt.many and len(outputs) != n:
        problems.append(f"{len(outputs)} candidates, not {n}")
    if len(fmt.keep_distinct(list(outputs))) != len(outputs):
        problems.append("repeats")
    for text in outputs:
        problems += fmt.problems(text)
        words = shaping.count_words(text)
        if budget:
            low, high = rule.length.bounds(budget)
            if not low <= words <= high:
                problems.append(f"{words} words for {budget} asked (allowed {low}-{high})")
        if source is not None and rule.length.source_share is not None:
            source_words = shaping.count_words(source)
            if words >= source_words:
                problems.append(f"{words} words, not shorter than the source's {source_words}")
        if fmt.code and language.lower() in formats.PYTHON:
            problems += contracts.check_python(text, test)
            if fmt.documents:
                problems += [p for p in contracts.check_docstrings(text) if not p.startswith("does not parse")]
    return problems


def facts(outputs: Sequence[str], required: Sequence[str], forbidden: Sequence[str]) -> dict:
    """Which required facts the served output misses (the first: the top-ranked candidate, what a user reads
    first) and which forbidden ones any candidate states; case and spacing aside."""

    def has(text: str, fact: str) -> bool:
        return " ".join(fact.casefold().split()) in " ".join(text.casefold().split())

    missing = [f for f in required if not (outputs and has(outputs[0], f))]
    present = [f for f in forbidden if any(has(o, f) for o in outputs)]
    return {"total": len(required) + len(forbidden), "missing": missing, "forbidden": present}


def judged_findings(stored: Sequence[dict], fresh: Sequence[dict], *, same_source: bool) -> list[dict]:
    """One output's findings under other checks than the worker reviewed it under (an experiment's candidate under
    its baseline's): `fresh`, the stored text reviewed again under them. The worker may have dropped unsupported
    sentences from the text, so where both reviews read the same source its grounding findings are kept when
    they are more than the fresh review finds on the text that is left."""
    fresh = list(fresh)
    if not same_source:
        return fresh
    kept = [f for f in stored if f.get("check") == "grounding" and not f.get("fixed")]
    if len(kept) > sum(f.get("check") == "grounding" and not f.get("fixed") for f in fresh):
        return [f for f in fresh if f.get("check") != "grounding"] + kept
    return fresh


def measure(
    *,
    fmt: formats.OutputFormat,
    rule: formats.KindRule,
    outputs: Sequence[dict],
    n: int,
    budget: int | None,
    source: str | None,
    grounding_applies: bool,
    reference: str,
    case_checks: dict,
    language: str = "python",
    tokens: int | None = None,
    latency_s: float | None = None,
    error: str = "",
) -> dict:
    """Everything measured on one case. `outputs` are the job's stored outputs ({"text", "checks"}); `error` a
    failed job's reason (then only the contract is measured: it failed)."""
    texts = [o["text"] for o in outputs]
    if error:
        return {"outputs": [], "error": error, "contract": {"ok": False, "problems": [f"job failed: {error}"]}}
    problems = contract_problems(
        fmt, rule, texts, n=n, budget=budget, source=source, test=case_checks.get("test", ""), language=language
    )
    findings = [f for o in outputs for f in o.get("checks", []) if not f.get("fixed")]
    ungrounded = sum(f["check"] in ("grounding", "language") for f in findings)
    style = sum(f["check"] == "style" for f in findings)
    scores = [s for s in (similarity(t, reference) for t in texts) if s is not None]
    result = {
        "outputs": texts,
        "error": "",
        "contract": {"ok": not problems, "problems": problems},
        "grounding": {"applies": grounding_applies, "ok": ungrounded == 0, "findings": ungrounded},
        "style": {"ok": style == 0, "findings": style},
        "chrf": max(scores) if scores else None,
        "tokens": tokens,
        "latency_s": round(latency_s, 2) if latency_s is not None else None,
    }
    if case_checks.get("required") or case_checks.get("forbidden"):
        found = facts(texts, case_checks.get("required", []), case_checks.get("forbidden", []))
        result["facts"] = {**found, "ok": not found["missing"] and not found["forbidden"]}
    return result


@dataclass(frozen=True)
class Metric:
    """One aggregate of a run: `of(case)` gives a case's value (None: not counted), averaged over the cases.
    `higher` says which way is better; `gate` names the threshold that limits its drop (gating.py), if any;
    a change within `noise` (a share of the baseline's value) is shown but not called worse or better."""

    key: str
    label: str
    of: object
    higher: bool | None = True
    rate: bool = True
    gate: str | None = None
    noise: float = 0.0


def _ok(part: str):
    return lambda case: None if part not in case else float(case[part]["ok"])


def _grounded(case: dict):
    g = case.get("grounding")
    return None if not g or not g["applies"] else float(g["ok"])


def _contract(case: dict):
    return float(case["contract"]["ok"])


METRICS = (
    Metric("contract_rate", "Contract met", _contract, gate="contract_rate"),
    Metric("grounded_rate", "Grounded in the source", _grounded, gate="grounded_rate"),
    Metric("style_clean_rate", "No house-style finding", _ok("style"), gate="style_clean_rate"),
    Metric("facts_rate", "Required facts present", _ok("facts"), gate="facts_rate"),
    Metric("chrf", "Similarity to the reference (chrF)", lambda c: c.get("chrf"), rate=False, gate="chrf"),
    Metric("tokens", "Completion tokens", lambda c: c.get("tokens"), higher=False, rate=False),
    # Wall time varies with what else the machine does (up to a third between two runs of the same cases on a
    # loaded 2-core host, measured), where everything else above is the same for the same seeds.
    Metric("latency_s", "Latency (s)", lambda c: c.get("latency_s"), higher=False, rate=False, noise=0.5),
)
METRIC_BY_KEY = {m.key: m for m in METRICS}


def summarise(cases: Sequence[dict]) -> dict:
    """The run's aggregates: per metric the mean over the cases it applies to (a rate is a share of cases) and
    how many cases that is; plus the cases whose job failed."""
    summary: dict = {"cases": len(cases), "failed": sum(bool(c.get("error")) for c in cases), "metrics": {}}
    for metric in METRICS:
        values = [v for v in (metric.of(c) for c in cases) if v is not None]
        mean = sum(values) / len(values) if values else None
        summary["metrics"][metric.key] = {
            "value": round(mean, 4) if mean is not None else None,
            "cases": len(values),
        }
    return summary


def _change(metric: Metric, baseline, candidate) -> tuple[float | None, bool, bool]:
    """(delta, worse, better) of a metric between two values; a metric without a direction is never worse."""
    if baseline is None or candidate is None:
        return None, False, False
    delta = round(candidate - baseline, 4)
    if metric.higher is None or abs(delta) <= max(abs(baseline) * metric.noise, 1e-9):
        return delta, False, False
    worse = delta < 0 if metric.higher else delta > 0
    return delta, worse, not worse


# A case's similarity counts as worse past this drop (chrF points): sampling noise between two wordings that say
# the same is a few points on a short text.
CASE_CHRF_DROP = 5.0


def case_regressions(baseline: dict, candidate: dict) -> list[str]:
    """What got worse on one case: a check that passed and now fails, or similarity down by more than
    CASE_CHRF_DROP."""
    worse = []
    for part, label in (("contract", "contract"), ("grounding", "grounding"), ("style", "style"), ("facts", "facts")):
        if part in baseline and part in candidate and baseline[part]["ok"] and not candidate[part]["ok"]:
            worse.append(label)
    b, c = baseline.get("chrf"), candidate.get("chrf")
    if b is not None and c is not None and b - c > CASE_CHRF_DROP:
        worse.append("similarity")
    return worse


def compare(baseline: dict, candidate: dict, cases: Sequence[tuple[int, dict, dict, dict]]) -> dict:
    """The side by side of two runs over the same dataset: `baseline` and `candidate` are their summaries, `cases`
    (index, inputs, baseline case, candidate case). Metrics that got worse come first, then the others in
    METRICS order; cases with a regression first, then by index. Each case carries a word diff of the first
    outputs (plain text segments: the page escapes them)."""
    rows = []
    for metric in METRICS:
        b = baseline["metrics"][metric.key]["value"]
        c = candidate["metrics"][metric.key]["value"]
        delta, worse, better = _change(metric, b, c)
        rows.append(
            {
                "key": metric.key,
                "label": metric.label,
                "rate": metric.rate,
                "baseline": b,
                "candidate": c,
                "delta": delta,
                "regressed": worse,
                "improved": better,
            }
        )
    rows.sort(key=lambda r: not r["regressed"])
    side = []
    for index, inputs, b_case, c_case in cases:
        before = (b_case.get("outputs") or [""])[0]
        after = (c_case.get("outputs") or [""])[0]
        side.append(
            {
                "index": index,
                "inputs": inputs,
                "baseline": b_case,
                "candidate": c_case,
                "regressions": case_regressions(b_case, c_case),
                "same": b_case.get("outputs") == c_case.get("outputs"),
                "diff": [list(s) for s in word_diff(before, after)],
            }
        )
    side.sort(key=lambda s: (not s["regressions"], s["index"]))
    return {
        "metrics": rows,
        "cases": side,
        "regressed_cases": sum(bool(s["regressions"]) for s in side),
        "identical_cases": sum(s["same"] for s in side),
    }
