"""The promotion gate: its thresholds as data, validated, and the reasons it gives with their numbers."""

import pytest

from generation.content import gating
from generation.content.prompts import InvalidInput


def row(key, baseline, candidate, rate=True, label=None):
    return {"key": key, "label": label or key, "rate": rate, "baseline": baseline, "candidate": candidate}


def test_defaults_protect_production_and_allow_no_drop_in_the_rates():
    gate = gating.parse({})
    assert gate.protects("production") and not gate.protects("staging")
    assert gate.failures([row("contract_rate", 1.0, 1.0), row("chrf", 50.0, 48.5, rate=False)]) == []
    failures = gate.failures([row("contract_rate", 1.0, 0.8, label="Contract met"), row("chrf", 50.0, 47.0, False)])
    assert failures == [
        "Contract met (contract_rate): 80% against the baseline's 100%, a drop of 20% where at most 0% is allowed",
        "chrf (chrf): 47.0 against the baseline's 50.0, a drop of 3.0 where at most 2.0 is allowed",
    ]
    # Better is never refused, and a metric without a value on a side (no references) passes.
    assert gate.failures([row("grounded_rate", 0.5, 1.0), row("chrf", None, 10.0, rate=False)]) == []
    assert gate.failures([row("tokens", 10, 90, rate=False)]) == []  # not gated


def test_a_template_gate_overrides_key_by_key_and_bad_ones_name_the_key():
    gate = gating.parse({"protected": ["production", "canary"], "max_drop": {"contract_rate": 0.1, "chrf": None}})
    assert gate.protects("canary") and gate.max_drop["contract_rate"] == 0.1 and "chrf" not in gate.max_drop
    assert gate.max_drop["grounded_rate"] == 0.0
    assert gate.failures([row("contract_rate", 1.0, 0.9), row("chrf", 50.0, 10.0, rate=False)]) == []
    for bad, key in (
        ([], "gate"),
        ({"protect": []}, "gate.protect"),
        ({"protected": "production"}, "gate.protected"),
        ({"max_drop": {"tokens": 1}}, "gate.max_drop.tokens"),
        ({"max_drop": {"chrf": -1}}, "gate.max_drop.chrf"),
        ({"max_drop": {"chrf": True}}, "gate.max_drop.chrf"),
    ):
        with pytest.raises(InvalidInput) as err:
            gating.parse(bad)
        assert list(err.value.errors) == [key]
