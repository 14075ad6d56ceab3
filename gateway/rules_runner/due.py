"""When each home next needs the time-based rules: a heap of per-person instants.

A tick pops only the homes that are due, so its cost does not grow with the number of
quiet homes. The entries are hints kept in memory: the database stays the source of truth
(the runner recomputes a person's instant from it whenever a fact about them changes, and
everybody's on a resynchronisation).
"""

from __future__ import annotations

import heapq
from datetime import datetime

__all__ = ["DueIndex"]


class DueIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int]] = []
        self._due: dict[int, datetime] = {}

    def __len__(self) -> int:
        return len(self._due)

    def schedule(self, person_id: int, at: datetime | None) -> None:
        """Look at ``person_id`` again at ``at`` (None: only when something changes)."""
        if at is None:
            self._due.pop(person_id, None)
            return
        if self._due.get(person_id) == at:
            return
        self._due[person_id] = at
        heapq.heappush(self._heap, (at, person_id))

    def next_at(self, person_id: int) -> datetime | None:
        return self._due.get(person_id)

    def pop_due(self, now: datetime) -> set[int]:
        """The persons due by ``now``, taken off the index (stale entries are dropped)."""
        due: set[int] = set()
        while self._heap and self._heap[0][0] <= now:
            at, person_id = heapq.heappop(self._heap)
            if self._due.get(person_id) == at:
                del self._due[person_id]
                due.add(person_id)
        if len(self._heap) > 4 * len(self._due) + 1024:
            # Rescheduled persons leave stale entries behind: rebuild now and then.
            self._heap = [(at, pid) for pid, at in self._due.items()]
            heapq.heapify(self._heap)
        return due

    def clear(self) -> None:
        self._heap.clear()
        self._due.clear()
