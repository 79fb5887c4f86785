"""run-all's copy of the footage elsewhere: the Copier in a thread of the supervisor, its status
for /status and `camctl status`, and its gauges for /metrics. A copy that cannot start (no
rclone) or a target away never stops recording: it is said, and recording goes on."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from camctl.config import Config, CopyConfig
from camctl.errors import CamctlError
from camctl.metrics import Family
from camctl.offsite.rclone import remote_problem
from camctl.recording.copier import Copier

log = logging.getLogger("camctl.copy")


class CopyRunner:
    def __init__(self) -> None:
        self.copier: Copier | None = None
        self.config: CopyConfig | None = None
        self._root: Path | None = None  # the storage root it copies from
        self.error: str | None = None  # why no copy runs (no rclone)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, config: Config) -> None:
        self.config, self._root, self.error = config.offsite, config.storage.root, None
        if config.offsite is None:
            return
        try:
            self.copier = Copier(config.storage.root, config.offsite, config.storage.segment_seconds)
        except CamctlError as exc:
            self.error = str(exc)
            log.error("%s; footage is recorded but not copied", exc)
            return
        problem = remote_problem(config.offsite.to, config.offsite.rclone, config.offsite.config)
        if problem:  # said at start; the rounds then say rclone's own words
            log.warning("%s", problem)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.copier.run, args=(self._stop,), name="copy", daemon=True)
        self._thread.start()
        log.info("copy: closed segments go to %s (%s)", config.offsite.shown, config.offsite.what)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self.copier is not None:
            self.copier.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread, self.copier = None, None

    def restart_if_changed(self, config: Config) -> None:
        if (config.offsite, config.storage.root) != (self.config, self._root):
            self.stop()
            self.start(config)

    def status(self) -> dict[str, Any]:
        if self.config is None:
            return {}
        if self.copier is None:
            return {"copy": {"to": self.config.shown, "state": "not running", "last_error": self.error}}
        return {"copy": self.copier.status.to_json()}

    def families(self) -> list[Family]:
        if self.copier is None:
            return []
        s = self.copier.status
        target = f'{{to="{_label(s.to)}"}}'

        def one(name: str, kind: str, value: float, text: str | None = None) -> Family:
            return Family(name, kind, (f"{name}{target} {value:g}",), text)

        return [
            one("camctl_copy_backlog_segments", "gauge", s.backlog_segments, "Closed segments not yet copied."),
            one("camctl_copy_backlog_bytes", "gauge", s.backlog_bytes),
            one("camctl_copy_oldest_waiting_seconds", "gauge", round(s.oldest_waiting or 0.0, 1),
                "Since the oldest segment waiting was closed (0: none waits)."),
            one("camctl_copy_segments_total", "counter", s.copied_segments,
                "Segments copied and checked (size and MD5) since start."),
            one("camctl_copy_bytes_total", "counter", s.copied_bytes),
            one("camctl_copy_errors_total", "counter", s.errors, "Copy rounds that failed (the target away, refused)."),
            one("camctl_copy_up", "gauge", 0 if s.last_error else 1, "1 when the last round reached the target."),
        ]  # fmt: skip


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
