"""The bitrate controller shared by transcoded streams and the grid: the storage budget, within
[minimum, maximum]. The disk must hold `keep_seconds` (the retention target, 24 h) of every stream
written to it: free space plus what is already recorded (retention recycles it), less the reserve
that retention keeps free, shared by the streams, gives the bitrate that still fits.
The encoder asks `update()` at each keyframe boundary and applies a change there, so a change
never lands mid-GOP. Load is not the bitrate's business: an encoder falling behind is the encoder
ladder's (`camctl/encoding/ladder.py`: a cheaper preset, then fewer frames), which helps at once,
where a lower bitrate barely changes what x264 spends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from camctl.storage.files import free_space
from camctl.storage.layout import scan_segments

log = logging.getLogger("camctl.bitrate")

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
    reason: str  # storage budget, recovered


class BitrateController:
    def __init__(
        self, target: int, minimum: int | None = None, maximum: int | None = None, budget: StorageBudget | None = None
    ) -> None:
        self.maximum = maximum or target
        self.minimum = min(minimum or max(100_000, target // 4), self.maximum)
        self.budget = budget
        self.bitrate = self._clamp(target)
        self.changes = 0
        self.reason = "configured"

    def _clamp(self, value: int) -> int:
        return max(self.minimum, min(self.maximum, value))

    def update(self, name: str = "encoder") -> BitrateChange | None:
        """The bitrate to use from this keyframe on; a change when it moved enough to matter."""
        wanted = self._clamp(self.budget.bitrate() if self.budget is not None else self.maximum)
        if abs(wanted - self.bitrate) < CHANGE_THRESHOLD * self.bitrate:
            return None
        reason = "storage budget" if wanted < self.bitrate else "recovered"
        change = BitrateChange(self.bitrate, wanted, reason)
        self.bitrate, self.reason = wanted, reason
        self.changes += 1
        log.info("%s: bitrate %d -> %d kbps (%s)", name, change.old // 1000, change.new // 1000, reason)
        return change
