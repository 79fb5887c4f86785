"""`camctl clip`: one camera's footage over a time range into one MP4, by stream copy."""

from __future__ import annotations

import os
from pathlib import Path

from camctl.config import CopyConfig
from camctl.errors import StorageError, UsageError
from camctl.recording.clip import ClipResult, export_clip
from camctl.recording.copies import footage_copy, with_copies
from camctl.recording.index import build_index

CLIP_SUFFIXES = (".mp4", ".m4v", ".mov")


def clip(
    root: Path, camera_id: str, start: float, end: float, output: Path, copy: CopyConfig | None = None
) -> ClipResult:
    """Raises UsageError for a reversed range or a non-MP4 name, NoFootage when nothing is there."""
    if end <= start:
        raise UsageError("--to must be after --from")
    if output.suffix.lower() not in CLIP_SUFFIXES:
        raise UsageError(f"{output}: the clip is an MP4: name it .mp4")
    folder = output.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):  # said first: not "no footage" (exit 6)
        why = "no such folder" if not folder.exists() else "not a writable folder"
        raise StorageError(f"cannot write {output}: {why} ({folder})")
    index = build_index(root, [camera_id])[camera_id]
    copies = footage_copy(root, copy)
    if copies is not None:  # what this disk no longer has is fetched from the copy
        index = with_copies(index, copies.records(camera_id, start - 3600, end))
    return export_clip(index, start, end, output)
