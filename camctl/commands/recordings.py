"""`camctl recordings`: what is on disk, per camera: segments and gaps with their reasons."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camctl.recording.index import CameraIndex, build_index, index_json


@dataclass(frozen=True)
class RecordingsResult:
    root: Path
    cameras: tuple[CameraIndex, ...]

    def to_json(self) -> dict[str, Any]:
        return {"root": str(self.root), "cameras": [index_json(i) for i in self.cameras]}


def list_recordings(
    root: Path, camera_ids: list[str] | None, start: float | None, end: float | None
) -> RecordingsResult:
    """Rebuilt from the files on every call (the disk is the truth), within [start, end]."""
    indexes = tuple(i.window(start, end) for i in build_index(root, camera_ids).values())
    return RecordingsResult(root, indexes)
