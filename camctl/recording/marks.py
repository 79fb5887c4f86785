"""Marks beside the footage: `<root>/<cam>/marks.jsonl`, one line per span someone said matters
(an analysis service on NATS, `camctl mark`, a POST to the HTTP API). Retention keeps what a mark
overlaps for `storage.retention.marked`; the timeline shows each one, a link to its moment.

Appends are single writes of a whole line (O_APPEND), so the writers (run-all's bus listener, the
HTTP front, the CLI) never interleave; readers skip a torn last line."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from camctl.storage.files import append_fd
from camctl.storage.spans import read_spans

MARKS_LOG = "marks.jsonl"
MAX_LABEL = 120
MAX_SPAN = 24 * 3600.0  # a mark longer than a day marks nothing in particular


def marks_path(root: Path, camera_id: str) -> Path:
    return root / camera_id / MARKS_LOG


def check_mark(start: float, end: float, label: str) -> str | None:
    """Why this mark cannot be kept (one line), or None."""
    if not end >= start:
        return "a mark ends after it starts"
    if end - start > MAX_SPAN:
        return "a mark spans a day at most"
    if end > time.time() + 60:
        return "a mark cannot end in the future"
    if len(label) > MAX_LABEL or any(ord(c) < 32 for c in label):
        return f"a label is one line of at most {MAX_LABEL} characters"
    return None


def append_mark(root: Path, camera_id: str, start: float, end: float, label: str, source: str) -> dict[str, Any]:
    """Appends one mark (ValueError with the reason for a bad one); the camera's folder is made
    when it has none yet (footage may follow)."""
    problem = check_mark(start, end, label)
    if problem:
        raise ValueError(problem)
    entry = {"start": round(start, 3), "end": round(end, 3), "label": label, "source": source,
             "at": round(time.time(), 3)}  # fmt: skip
    path = marks_path(root, camera_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = append_fd(path)
    try:
        os.write(fd, (json.dumps(entry) + "\n").encode())  # one write: lines never interleave
    finally:
        os.close(fd)
    return entry


def read_marks(
    root: Path, camera_id: str, start: float = float("-inf"), end: float = float("inf")
) -> list[dict[str, Any]]:
    """Marks overlapping [start, end], oldest first."""
    return [{"start": m["start"], "end": m["end"], "label": str(m.get("label", "")), "source": str(m.get("source", ""))}
            for m in read_spans(marks_path(root, camera_id)) if m["end"] >= start and m["start"] <= end]  # fmt: skip
