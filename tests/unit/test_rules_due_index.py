"""The due index: a tick takes only the homes due by now, each once, latest schedule wins."""

from __future__ import annotations

from datetime import timedelta

from gateway.rules_runner.due import DueIndex
from tests.unit.rule_facts import local


def test_only_due_persons_are_popped_and_rescheduling_replaces() -> None:
    index = DueIndex()
    index.schedule(1, local(10, 12))
    index.schedule(2, local(10, 14))
    index.schedule(1, local(10, 13))  # new activity moved person 1's deadline
    assert index.pop_due(local(10, 12)) == set()
    assert index.pop_due(local(10, 13)) == {1}
    assert index.pop_due(local(10, 13)) == set(), "popped once"
    index.schedule(2, None)  # nothing to wait for any more
    assert index.pop_due(local(11, 0)) == set()
    assert len(index) == 0


def test_many_reschedules_do_not_grow_the_heap_for_ever() -> None:
    index = DueIndex()
    start = local(10, 8)
    for step in range(10_000):
        index.schedule(1, start + timedelta(seconds=step))
    assert index.pop_due(start - timedelta(seconds=1)) == set()
    assert len(index._heap) < 2000
    assert index.pop_due(start + timedelta(hours=3)) == {1}
