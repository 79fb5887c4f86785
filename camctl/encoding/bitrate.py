"""The bitrate controller shared by transcoded streams and the grid.

Two limits, the lower wins, always within [minimum, maximum]:
- storage: the disk must hold `keep_seconds` (the retention target, 24 h) of every stream written
  to it. Free space plus what is already recorded (retention recycles it), less the reserve that
  retention keeps free, shared by the streams, gives the bitrate that still fits;
- load: an encoder that drops frames or runs slower than real time steps down by 20 %; after a few
  calm intervals it steps back up by 10 %.
The encoder asks `update()` at each keyframe boundary and applies a change there, so a change
never lands mid-GOP.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from camctl.storage import free_space, scan_segments

log = logging.getLogger("camctl.bitrate")

STEP_DOWN = 0.8
STEP_UP = 1.1
CALM_INTERVALS = 3  # updates without trouble before stepping up
CHANGE_THRESHOLD = 0.05  # smaller moves are not worth an encoder restart


@dataclass(frozen=True)
class DiskUsage:
    free: int  # bytes free on the filesystem
    recorded: int  # bytes of footage already there, which retention recycles


def measure_disk(root: Path) -> DiskUsage:
    return DiskUsage(free_space(root), sum(s.size for s in scan_segments(root)) if root.exists() else 0)


@dataclass
class StorageBudget:
    """The bitrate per stream that keeps `keep_seconds` of `streams` streams on the disk."""

    root: Path
    keep_seconds: float
    streams: int
    reserve: int = 0  # retention's min_free
    probe: Callable[[Path], DiskUsage] = measure_disk  # injectable: tests shrink the disk at will
    # seconds between measurements: it scans every segment (0.1 s for a day of 4 cameras), in the
    # camera's own thread, and a disk that holds a day does not fill in a minute
    every: float = 60.0
    _cached: int | None = None
    _measured_at: float = float("-inf")

    def bitrate(self) -> int:
        now = time.monotonic()
        if self._cached is None or now - self._measured_at >= self.every:
            usage = self.probe(self.root)
            usable = max(0, usage.free + usage.recorded - self.reserve)
            self._cached = int(usable * 8 / self.keep_seconds / max(1, self.streams))
            self._measured_at = now
        return self._cached


@dataclass
class BitrateChange:
    old: int
    new: int
    reason: str  # storage budget, load, recovered


class BitrateController:
    def __init__(
        self, target: int, minimum: int | None = None, maximum: int | None = None, budget: StorageBudget | None = None
    ) -> None:
        self.maximum = maximum or target
        self.minimum = min(minimum or max(100_000, target // 4), self.maximum)
        self.budget = budget
        self.bitrate = self._clamp(target)
        self._load_cap = self.maximum
        self._calm = 0
        self.changes = 0
        self.reason = "configured"

    def _clamp(self, value: int) -> int:
        return max(self.minimum, min(self.maximum, value))

    def update(self, struggling: bool = False, name: str = "encoder") -> BitrateChange | None:
        """The bitrate to use from this keyframe on; a change when it moved enough to matter.

        struggling: frames were dropped, or encoding ran slower than real time, since the last call.
        """
        if struggling:
            self._load_cap = self._clamp(int(self.bitrate * STEP_DOWN))
            self._calm = 0
        else:
            self._calm += 1
            if self._calm >= CALM_INTERVALS and self._load_cap < self.maximum:
                self._load_cap = self._clamp(int(self._load_cap * STEP_UP))
                self._calm = 0
        storage_cap = self.budget.bitrate() if self.budget is not None else self.maximum
        wanted = self._clamp(min(self._load_cap, storage_cap))
        if abs(wanted - self.bitrate) < CHANGE_THRESHOLD * self.bitrate:
            return None
        if storage_cap <= self._load_cap and wanted < self.bitrate:
            reason = "storage budget"
        elif wanted < self.bitrate:
            reason = "load"
        else:
            reason = "recovered"
        change = BitrateChange(self.bitrate, wanted, reason)
        self.bitrate, self.reason = wanted, reason
        self.changes += 1
        log.info("%s: bitrate %d -> %d kbps (%s)", name, change.old // 1000, change.new // 1000, reason)
        return change
