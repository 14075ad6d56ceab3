"""Dedup keys: payload ids make repeats no-ops, without ever merging two different ids."""

from __future__ import annotations

from gateway.ingest import dedup_base


def test_same_id_same_key_and_no_id_always_unique() -> None:
    assert dedup_base("ev-1") == dedup_base("ev-1")
    assert dedup_base(None) != dedup_base(None)


def test_long_ids_sharing_a_prefix_stay_distinct_and_fit_the_column() -> None:
    a, b = "x" * 150 + "a", "x" * 150 + "b"
    assert dedup_base(a) != dedup_base(b)
    assert dedup_base(a) == dedup_base(a)
    assert all(len(dedup_base(i)) + len("#99") <= 100 for i in (a, "y" * 90, "z" * 91))
