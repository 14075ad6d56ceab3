"""The rules runner: reads the facts through storage queries, runs the rules of
:mod:`gateway.rules`, and applies their decisions through the alert service. It is the one
consumer of stored events and the only place decisions become alerts."""

from __future__ import annotations

from gateway.rules_runner.runner import RulesRunner

__all__ = ["RulesRunner"]
