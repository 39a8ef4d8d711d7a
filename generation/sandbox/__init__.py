"""The sandbox: the one way code nobody reviewed (model output, dataset tests) is ever run. No Django, nothing of
the project above it: content's code checks call it, the composition root configures it."""

from .runner import Config, Limits, Outcome, availability, configure, current, run_python

__all__ = ["Config", "Limits", "Outcome", "availability", "configure", "current", "run_python"]
