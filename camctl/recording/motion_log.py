"""Motion beside the footage: `<root>/<cam>/motion.jsonl`, one line per movement that ended.

`camctl motion` appends here when the camera is recorded on its box (the camera's folder exists in
the storage root), so the recordings API and the timeline can show where something moved. Only
that process writes it; readers skip a torn last line. The file keeps itself to the retention's
age: when it grows past COMPACT_BYTES, lines older than that are dropped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from camctl.storage.files import append_fd
from camctl.storage.spans import read_spans

MOTION_LOG = "motion.jsonl"
COMPACT_BYTES = 1 << 20  # about 15,000 movements


def motion_path(root: Path, camera_id: str) -> Path:
    return root / camera_id / MOTION_LOG


def append_motion(root: Path, camera_id: str, start: float, end: float, score: float, keep: float | None) -> bool:
    """Appends one movement; False when the camera is not recorded here (no folder to write in).
    keep: seconds of motion to keep (the retention's max_age), None: all."""
    path = motion_path(root, camera_id)
    if not path.parent.is_dir():
        return False
    line = json.dumps({"start": round(start, 3), "end": round(end, 3), "score": round(score, 4)}) + "\n"
    with os.fdopen(append_fd(path), "a", encoding="utf-8") as f:
        f.write(line)
    if keep is not None and path.stat().st_size > COMPACT_BYTES:
        _compact(path, end - keep)
    return True


def read_motion(root: Path, camera_id: str, start: float, end: float) -> list[dict[str, Any]]:
    """Movements overlapping [start, end], oldest first."""
    return [{"start": m["start"], "end": m["end"], "score": m["score"]}
            for m in read_spans(motion_path(root, camera_id))
            if "score" in m and m["end"] >= start and m["start"] <= end]  # fmt: skip


def _compact(path: Path, keep_after: float) -> None:
    kept = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
            if _ends_after(line, keep_after)]  # fmt: skip
    tmp = path.with_name(f".{MOTION_LOG}.tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    tmp.replace(path)


def _ends_after(line: str, t: float) -> bool:
    try:
        return float(json.loads(line)["end"]) >= t
    except (ValueError, KeyError, TypeError):
        return False
