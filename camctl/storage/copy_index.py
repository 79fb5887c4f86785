"""Which segments the copy elsewhere holds, checked: its index on this disk, under
`<root>/.copy/<target>/index/<cam>/<day>/<hour>.jsonl` (written by camctl.recording.copies)."""

from __future__ import annotations

from pathlib import Path

from camctl.storage.files import json_lines
from camctl.storage.layout import Segment

COPY_FOLDER = ".copy"  # under the root: the copy elsewhere's index (camctl.recording.copies)


def copied_segments(root: Path, segments: list[Segment]) -> set[Path]:
    """Those of the segments that a copy elsewhere holds, checked (its index, hour by hour)."""
    hours = {p.relative_to(root).parent for p in (s.path for s in segments) if p.is_relative_to(root)}
    files: set[str] = set()
    for hour in hours:
        for index in (root / COPY_FOLDER).glob(f"*/index/{hour.as_posix()}.jsonl"):
            files |= {str(e.get("file")) for e in json_lines(index)}
    return {s.path for s in segments if s.path.is_relative_to(root) and s.path.relative_to(root).as_posix() in files}
