"""Where segments live: `<root>/<cam>/<YYYY-MM-DD>/<HH>/<cam>_<YYYYMMDDTHHMMSSZ>.mp4`, a name that carries
its camera and UTC start, and the scans that read the tree back. The disk is the truth: scanning
it rebuilds every index.
"""

from __future__ import annotations

import calendar
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# A camera's id, with .sub (or another stream's name) for a recorded stream other than main.
_NAME = re.compile(
    r"(?P<cam>[A-Za-z0-9][A-Za-z0-9_-]{0,63}(?:\.[a-z][a-z0-9_]{0,15})?)"
    r"_(?P<ts>(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z)\.mp4"
)


_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, order=True)
class Segment:
    start: float  # UTC epoch seconds, from the file name
    camera_id: str
    path: Path
    size: int
    mtime: float = 0.0  # when it was last written: its end, once finished


def segment_path(root: Path, camera_id: str, start: datetime) -> Path:
    utc = start.astimezone(UTC)
    return root / camera_id / f"{utc:%Y-%m-%d}" / f"{utc:%H}" / f"{camera_id}_{utc:{_STAMP}}.mp4"


def parse_segment_name(name: str) -> tuple[str, float] | None:
    """(camera id, UTC start) from a segment file name, or None for any other file."""
    m = _NAME.fullmatch(name)
    if not m:
        return None
    year, month, day, hour, minute, second = (int(v) for v in m.groups()[2:])
    # Validated by hand: strptime costs more than the rest of a scan of thousands of names.
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1] and hour < 24 and minute < 60):
        return None
    if second > 59:
        return None
    return m["cam"], float(calendar.timegm((year, month, day, hour, minute, second)))


def scan_segments(root: Path) -> list[Segment]:
    """Every segment under root, oldest first. Other files are ignored, never touched."""
    found: list[Segment] = []
    if not root.is_dir():
        return found
    for cam_dir in _dirs(root):
        found += _camera_segments(cam_dir)
    found.sort(key=lambda s: (s.start, s.camera_id, s.path.name))
    return found


def scan_camera_segments(root: Path, camera_id: str, since: tuple[str, str] | None = None) -> list[Segment]:
    """One camera's segments, oldest first; since (day, hour) folder names: only those folders
    and later ones (what may have changed after an index of the older ones was kept)."""
    cam_dir = root / camera_id
    if not cam_dir.is_dir() or cam_dir.is_symlink():
        return []
    return sorted(_camera_segments(cam_dir, since), key=lambda s: (s.start, s.path.name))


def segment_folder(path: Path) -> tuple[str, str]:
    """The (day, hour) folder names a segment file lies in."""
    return path.parent.parent.name, path.parent.name


def _camera_segments(cam_dir: Path, since: tuple[str, str] | None = None) -> list[Segment]:
    found: list[Segment] = []
    for day in _dirs(cam_dir):
        if since is not None and day.name < since[0]:
            continue
        for hour in _dirs(day):
            if since is not None and (day.name, hour.name) < since:
                continue
            with os.scandir(hour) as entries:
                for entry in entries:
                    parsed = parse_segment_name(entry.name)
                    if parsed is None or parsed[0] != cam_dir.name or not entry.is_file(follow_symlinks=False):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:  # pruned meanwhile by someone else
                        continue
                    found.append(Segment(parsed[1], parsed[0], Path(entry.path), st.st_size, st.st_mtime))
    return found


def _dirs(path: Path) -> list[Path]:
    """Sub-folders, never through a symlink; dot-folders are camctl's own (the clip cache)."""
    with os.scandir(path) as entries:
        return sorted(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
