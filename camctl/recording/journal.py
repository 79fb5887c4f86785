"""Per-camera journal of finished segments and gaps: `<root>/<cam>/recordings.jsonl`.

Only the camera's recorder appends to it (one JSON object per line, fsynced), so a crash loses at
most the line being written, and a torn last line is skipped when reading. The journal is a cache
of facts the files also hold: a segment without an entry (the recorder was killed) is measured
from the file itself, and an entry whose file is gone (pruned) is ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camctl.recording.segment_writer import SegmentInfo
from camctl.storage.files import append_fd, folders_inside
from camctl.units import iso_time

JOURNAL_NAME = "recordings.jsonl"


@dataclass(frozen=True)
class Gap:
    camera_id: str
    start: float
    end: float
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The journal line."""
        return {"type": "gap", "from": round(self.start, 6), "to": round(self.end, 6), "reason": self.reason}

    def to_report(self) -> dict[str, Any]:
        """For people's scripts (--json): ISO times and the duration."""
        return {
            "from": iso_time(self.start),
            "to": iso_time(self.end),
            "duration": round(self.end - self.start, 3),
            "reason": self.reason,
        }


def journal_path(root: Path, camera_id: str) -> Path:
    return root / camera_id / JOURNAL_NAME


class Journal:
    def __init__(self, root: Path, camera_id: str) -> None:
        self.root = root
        self.camera_id = camera_id
        self.path = journal_path(root, camera_id)

    def segment(self, info: SegmentInfo) -> None:
        self._append(info.to_json(self.root))

    def gap(self, gap: Gap) -> None:
        self._append(gap.to_json())

    def _append(self, entry: dict[str, Any]) -> None:
        folders_inside(self.root, self.path.parent)
        with os.fdopen(append_fd(self.path), "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def compact(self, keep_after: float) -> None:
        """Rewrites the journal without entries for deleted files and gaps older than keep_after."""
        segments, gaps = read_journal(self.root, self.camera_id)
        cam_dir = self.root / self.camera_id
        kept: list[dict[str, Any]] = [e for f, e in segments.items() if (cam_dir / f).exists()]
        kept += [g.to_json() for g in gaps if g.end >= keep_after]
        kept.sort(key=lambda e: float(e.get("start", e.get("from", 0))))
        tmp = self.path.with_name(f".{JOURNAL_NAME}.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(e, separators=(",", ":")) + "\n" for e in kept)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)


def read_journal(root: Path, camera_id: str) -> tuple[dict[str, dict[str, Any]], list[Gap]]:
    """(segment entries by file path relative to the camera folder, gaps oldest first)."""
    segments: dict[str, dict[str, Any]] = {}
    gaps: list[Gap] = []
    try:
        lines = journal_path(root, camera_id).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:  # none yet, or unreadable: the files alone still tell what is recorded
        return segments, gaps
    for line in lines:
        try:
            entry = json.loads(line)
            if entry.get("type") == "segment":
                segments[str(entry["file"])] = entry
            elif entry.get("type") == "gap":
                gaps.append(Gap(camera_id, float(entry["from"]), float(entry["to"]), str(entry["reason"])))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a line torn by a crash
    gaps.sort(key=lambda g: g.start)
    return segments, gaps
