"""The promotion gate, as data: which labels it protects and how far each gated metric may drop against the
baseline. A template's `gate` JSON overrides the defaults key by key. Pure: services/templates.py asks it
whether an experiment allows a move, and shows the refusal's numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

from .evaluation import METRIC_BY_KEY
from .prompts import InvalidInput

# No drop at all in the checked rates (one case in twenty less is a real regression on a gate dataset), and up
# to 2 chrF points of similarity, about the spread between two samplings of the same prompt on short texts.
DEFAULT_PROTECTED = ("production",)
DEFAULT_MAX_DROP = {"contract_rate": 0.0, "grounded_rate": 0.0, "style_clean_rate": 0.0, "facts_rate": 0.0, "chrf": 2.0}


@dataclass(frozen=True)
class Gate:
    protected: tuple[str, ...] = DEFAULT_PROTECTED
    max_drop: dict = field(default_factory=lambda: dict(DEFAULT_MAX_DROP))

    def protects(self, label: str) -> bool:
        return label in self.protected

    def as_json(self) -> dict:
        return {"protected": list(self.protected), "max_drop": dict(self.max_drop)}

    def failures(self, comparison_metrics: list[dict]) -> list[str]:
        """Why the candidate may not be promoted, with the numbers: each gated metric that dropped by more than
        allowed against the baseline. Metrics without a value on either side (no reference, no source) pass."""
        out = []
        for row in comparison_metrics:
            allowed = self.max_drop.get(row["key"])
            if allowed is None or row["baseline"] is None or row["candidate"] is None:
                continue
            drop = row["baseline"] - row["candidate"]
            if drop > allowed + 1e-9:
                fmt = (lambda v: f"{v:.0%}") if row["rate"] else (lambda v: f"{v:.1f}")
                out.append(
                    f"{row['label']} ({row['key']}): {fmt(row['candidate'])} against the baseline's "
                    f"{fmt(row['baseline'])}, a drop of {fmt(drop)} where at most {fmt(allowed)} is allowed"
                )
        return out


def parse(data) -> Gate:
    """A template's gate JSON, validated: raises InvalidInput naming the key at fault ("gate.max_drop.chrf")."""
    if data in (None, ""):
        data = {}
    if not isinstance(data, dict):
        raise InvalidInput({"gate": ['An object: {"protected": [...], "max_drop": {...}}.']})
    unknown = sorted(set(data) - {"protected", "max_drop"})
    if unknown:
        raise InvalidInput({f"gate.{unknown[0]}": ["Unknown key; the gate has protected and max_drop."]})
    protected = data.get("protected", list(DEFAULT_PROTECTED))
    if not isinstance(protected, list) or not all(isinstance(p, str) and p for p in protected):
        raise InvalidInput({"gate.protected": ["A list of label names."]})
    drops = data.get("max_drop", {})
    if not isinstance(drops, dict):
        raise InvalidInput({"gate.max_drop": ["An object of metric: allowed drop."]})
    max_drop = dict(DEFAULT_MAX_DROP)
    for key, value in drops.items():
        if key not in METRIC_BY_KEY or METRIC_BY_KEY[key].gate is None:
            gated = ", ".join(k for k, m in METRIC_BY_KEY.items() if m.gate)
            raise InvalidInput({f"gate.max_drop.{key}": [f"Not a gated metric; these are: {gated}."]})
        if value is None:
            max_drop.pop(key)  # null: this metric is not gated
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InvalidInput({f"gate.max_drop.{key}": ["A number, 0 or more (or null to not gate it)."]})
        max_drop[key] = float(value)
    return Gate(protected=tuple(protected), max_drop=max_drop)
