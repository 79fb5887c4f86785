"""`camctl recordings`: what is on disk, per camera: segments and gaps with their reasons."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camctl.config import CopyConfig
from camctl.recording.copies import footage_copy, with_copies
from camctl.recording.index import CameraIndex, build_index, index_json


@dataclass(frozen=True)
class RecordingsResult:
    root: Path
    cameras: tuple[CameraIndex, ...]

    def to_json(self) -> dict[str, Any]:
        return {"root": str(self.root), "cameras": [index_json(i) for i in self.cameras]}


def list_recordings(
    root: Path, camera_ids: list[str] | None, start: float | None, end: float | None, copy: CopyConfig | None = None
) -> RecordingsResult:
    """Rebuilt from the files on every call (the disk is the truth), within [start, end]; with a
    copy elsewhere, what only the copy still has is listed too (marked `copy`)."""
    copies = footage_copy(root, copy)
    wanted = camera_ids
    if wanted is None and copies is not None:  # cameras whose footage only the copy has (a new box)
        wanted = sorted({*build_index(root).keys(), *copies.cameras()})
    indexes = []
    for disk in build_index(root, wanted).values():
        index = disk if copies is None else with_copies(disk, copies.records(disk.camera_id, start, end))
        indexes.append(index.window(start, end))
    return RecordingsResult(root, tuple(indexes))
