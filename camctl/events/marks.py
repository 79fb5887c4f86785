"""Marks from outside: an analysis service publishes `seguranca.camera.mark` on NATS
({"camera_id", "start", "end", "label"}; a reply, when asked, says whether it was kept), POSTs the
same JSON to `/api/marks/<cam>` (camctl.web.marks), or an operator runs `camctl mark`. Each mark goes
to the camera's marks.jsonl beside its footage (camctl.recording.marks), which retention keeps for
`storage.retention.marked` and the timeline shows, and is an event in the events database
(camctl.events.store), listed by `camctl events` beside what motion and detections find."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from camctl.bus.subjects import MARK_SUBJECT, Mark, MarkAnswer
from camctl.config import CameraConfig, Config
from camctl.errors import CamctlError, StorageError
from camctl.events.store import EventStore
from camctl.events.tracker import severity_of
from camctl.recording.marks import append_mark
from camctl.units import iso_time, parse_time

log = logging.getLogger("camctl.marks")

MARK_LABEL = "mark"  # the label of an event marked without one


class MarkIntake:
    """Takes marks for the cameras of the config it is given (read anew at each mark: a reload
    adds cameras)."""

    def __init__(self, config: Callable[[], Config]) -> None:
        self._config = config

    def add(self, camera_name: str, body: Any, source: str) -> Mark:
        """Keeps one mark; ValueError (one line) for a bad one, CamctlError for an unknown camera."""
        if not isinstance(body, dict):
            raise ValueError("a mark is a JSON object: {camera_id, start, end, label}")
        config = self._config()
        camera = config.camera(camera_name)
        now = time.time()
        start = _moment(body.get("start"), now, "start")
        end = _moment(body.get("end", "now"), now, "end")
        label = str(body.get("label") or "")
        entry = append_mark(config.storage.root, camera.id, start, end, label, source)
        _as_event(config.storage.root, camera, entry["start"], entry["end"], label)
        link = f"{config.http.public_url}/{camera.slug}/?t={quote(iso_time(entry['start']))}"
        log.info("%s: marked %s - %s %r (%s)", camera.id, iso_time(start), iso_time(end), label, source)
        return {"camera_id": camera.id, "start": iso_time(entry["start"]), "end": iso_time(entry["end"]),
                "label": label, "source": source, "link": link}  # fmt: skip

    async def add_soon(self, camera_name: str, body: Any, source: str) -> Mark:
        """add() off the event loop (it appends to a file)."""
        return await asyncio.get_running_loop().run_in_executor(None, self.add, camera_name, body, source)

    async def on_message(self, msg: Any) -> None:
        """A mark on NATS; answered (when the sender asked) with the mark or why it was refused."""
        answer: MarkAnswer
        try:
            body = json.loads(msg.data)
            name = str(body.get("camera_id") or "") if isinstance(body, dict) else ""
            answer = {"ok": True, "mark": await self.add_soon(name, body, "nats")}
        except (ValueError, CamctlError, OSError) as exc:
            log.warning("a mark on %s refused: %s", MARK_SUBJECT, exc)
            answer = {"ok": False, "error": str(exc)}
        if msg.reply:
            await msg.respond(json.dumps(answer).encode())


def _as_event(root: Path, camera: CameraConfig, start: float, end: float, label: str) -> None:
    """A mark is an event too (source `mark`, over as it comes), listed beside detections; the mark
    itself is kept in marks.jsonl whatever the events database says."""
    label = label or MARK_LABEL
    try:
        store = EventStore.beside_footage(root)
        try:
            store.start(camera.id, label, "mark", start, end=end, severity=severity_of(camera.events, label, ()))
        finally:
            store.close()
    except StorageError as exc:
        log.warning("%s: the mark is kept, but not listed among the events: %s", camera.id, exc)


def _moment(value: Any, now: float, name: str) -> float:
    """Epoch seconds, or text as the CLI takes it (RFC 3339, -2m, now)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        return parse_time(value, now)
    raise ValueError(f"{name}: give a time (RFC 3339, epoch seconds, -2m or now)")
