"""Retention inside the recorder: after every finished segment, and at once when storage fails."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from camctl.errors import StorageError
from camctl.storage import Limits, free_space, prune
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
            limits = self.limits
            if force and limits.min_free is None:
                # Storage failed: make room even when no free-space floor is configured.
                limits = Limits(limits.max_age, limits.max_bytes, 1)
            plan = prune(self.root, limits, now, self.free_probe)
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
