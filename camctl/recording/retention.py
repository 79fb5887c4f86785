"""Retention inside the recorder: after every finished segment, and at once when storage fails.

Whatever the limits, room for a few more segments per camera stays free, so that a disk that
fills is pruned ahead of the recorder instead of after a failed write."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from camctl.errors import StorageError
from camctl.storage.files import free_space
from camctl.storage.retention import RESERVE_SEGMENTS, Limits, prune, unreachable_min_free
from camctl.units import format_size

log = logging.getLogger("camctl.record")


class RetentionRunner:
    """Shared by the camera recorders; one prune at a time, at most every `interval` seconds unless
    forced (a full disk cannot wait)."""

    def __init__(
        self,
        root: Path,
        limits: Limits,
        interval: float = 10.0,
        free_probe: Callable[[Path], int] = free_space,
    ) -> None:
        self.root = root
        warning = unreachable_min_free(root, limits)
        if warning:  # it is ignored rather than deleting all but the newest segment, round after round
            log.warning("%s", warning)
            limits = replace(limits, min_free=None)
        self.limits = limits
        self.interval = interval
        self.free_probe = free_probe
        self.deleted = 0
        self.freed = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._last_run = 0.0

    def run(self, force: bool = False) -> None:
        if not self._lock.acquire(blocking=False):
            return  # another camera's thread is pruning right now
        try:
            now = time.time()
            if not force and now - self._last_run < self.interval:
                return
            self._last_run = now
            # Room for a few segments per camera is always kept; when writing failed anyway (the disk
            # filled faster, or someone else filled it), twice that: freeing one segment at a time
            # would lose footage again within seconds.
            reserve = RESERVE_SEGMENTS * (2 if force else 1)
            plan = prune(self.root, self.limits, now, self.free_probe, reserve_segments=reserve)
            self.last_error = None
            if plan.delete:
                self.deleted += len(plan.delete)
                self.freed += plan.freed_bytes
                reasons = sorted(set(plan.reasons.values()))
                log.info(
                    "retention: deleted %d segment(s), %s (%s)",
                    len(plan.delete),
                    format_size(plan.freed_bytes),
                    ", ".join(reasons),
                )
        except (StorageError, OSError) as exc:
            self.last_error = str(exc)
            log.error("retention: %s", exc)
        finally:
            self._lock.release()
