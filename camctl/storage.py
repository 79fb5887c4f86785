"""Where segments live on disk, and the retention that makes the disk a circular buffer.

The disk is the truth: a segment is a file `<root>/<cam>/<YYYY-MM-DD>/<HH>/<cam>_<YYYYMMDDTHHMMSSZ>.mp4`
whose name carries its camera and UTC start. Scanning the tree rebuilds every index.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camctl.errors import StorageError
from camctl.units import format_size

log = logging.getLogger("camctl.record")

if TYPE_CHECKING:
    from camctl.config import RetentionConfig

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


def folders_inside(root: Path, folder: Path) -> None:
    """Makes folder (under root) and every folder between, none of them a symlink: one put inside
    the storage root (by mistake or by someone else) is replaced by a real folder and said, so that
    recordings never land outside the root, where retention never looks. The root itself may be a
    symlink (a mount elsewhere): it is the operator's choice."""
    root.mkdir(parents=True, exist_ok=True)
    current = root
    for part in folder.relative_to(root).parts:
        current = current / part
        no_symlink(current)
        with contextlib.suppress(FileExistsError):
            current.mkdir()


def append_fd(path: Path) -> int:
    """A file descriptor appending to path (a journal), never through a symlink put in its place.
    A last line torn by a crash is ended first: the next line must not be glued to it (and lost)."""
    no_symlink(path)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        os.write(fd, b"\n")
    return fd


def no_symlink(path: Path) -> None:
    """A symlink at path (inside the storage root) is removed, and said; its target is left alone."""
    if path.is_symlink():
        target = path.readlink()
        path.unlink()
        log.warning("%s was a symlink (to %s) inside the storage root: replaced, nothing written through it",
                    path, target)  # fmt: skip


def _dirs(path: Path) -> list[Path]:
    """Sub-folders, never through a symlink; dot-folders are camctl's own (the clip cache)."""
    with os.scandir(path) as entries:
        return sorted(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))


@dataclass(frozen=True)
class Limits:
    max_age: float | None = None  # seconds: continuous footage
    max_bytes: int | None = None  # all cameras together
    min_free: int | None = None  # bytes that must stay free on the filesystem
    motion_age: float | None = None  # footage overlapping motion (None: as max_age)
    marked_age: float | None = None  # footage overlapping a mark (None: as motion)

    @classmethod
    def of(cls, retention: RetentionConfig) -> Limits:
        return cls(retention.continuous_age, retention.max_bytes, retention.min_free, retention.motion,
                   retention.marked)  # fmt: skip

    @property
    def tiered(self) -> bool:
        return self.motion_age is not None or self.marked_age is not None

    def age_of(self, tier: str) -> float | None:
        """How long a tier's footage stays: the longest of its own age and the tiers below it
        (None: for ever, as far as age goes)."""
        ages = [self.max_age]
        if tier in ("motion", "marked"):
            ages.append(self.motion_age)
        if tier == "marked":
            ages.append(self.marked_age)
        if self.max_age is None:
            return None
        return max(a for a in ages if a is not None)


TIERS = ("continuous", "motion", "marked")  # freed in this order when space runs out
Spans = dict[str, list[tuple[float, float]]]  # camera id -> (start, end), sorted


@dataclass
class RetentionPlan:
    delete: list[Segment] = field(default_factory=list)
    reasons: dict[Path, str] = field(default_factory=dict)  # path -> max_age | max_bytes | min_free
    kept: int = 0  # segments that stay
    tiers: dict[Path, str] = field(default_factory=dict)  # path -> continuous | motion | marked (each segment)

    @property
    def freed_bytes(self) -> int:
        return sum(s.size for s in self.delete)


RESERVE_SEGMENTS = 3  # free room kept for this many segments per camera, whatever min_free says


def reserve_bytes(segments: list[Segment], per_camera: int = RESERVE_SEGMENTS) -> int:
    """Room for `per_camera` more segments of every camera (sized by its larger of the last two
    finished ones): what recording needs to go on while retention catches up."""
    recent: dict[str, list[int]] = {}
    for seg in segments:  # oldest first
        recent.setdefault(seg.camera_id, []).append(seg.size)
    return per_camera * sum(max(sizes[-3:-1] or sizes[-1:]) for sizes in recent.values())


def plan_retention(
    segments: list[Segment], limits: Limits, now: float, free_bytes: int | None, reserve: int = 0,
    motion: Spans | None = None, marks: Spans | None = None,
    copied: Callable[[list[Segment]], set[Path]] | None = None,
) -> RetentionPlan:  # fmt: skip
    """Which whole segments to delete so that every limit holds again and `reserve` bytes are free:
    by age, each segment by the longest tier it overlaps (marks, then motion, then continuous);
    by size, the oldest continuous footage first, then motion, then marked; within a tier what
    `copied` says the copy elsewhere holds first.

    The newest segment of each camera is never chosen: it may be the one being written."""
    newest: dict[str, Segment] = {}
    for seg in segments:  # oldest first, so the last one seen per camera is its newest
        newest[seg.camera_id] = seg
    floor = max(limits.min_free or 0, reserve) or None
    ends = _segment_ends(segments)
    candidates = [s for s in segments if newest[s.camera_id] is not s]
    plan = RetentionPlan()
    for seg in segments:
        plan.tiers[seg.path] = tier_of(seg, ends[seg.path], motion or {}, marks or {})
    total = sum(s.size for s in segments)
    freed = 0

    def take(seg: Segment, reason: str) -> None:
        nonlocal freed
        plan.delete.append(seg)
        plan.reasons[seg.path] = reason
        freed += seg.size

    newer: list[Segment] = []
    for seg in candidates:
        age = limits.age_of(plan.tiers[seg.path])
        if age is not None and ends[seg.path] <= now - age:
            take(seg, "max_age" if plan.tiers[seg.path] == "continuous" else f"{plan.tiers[seg.path]} age")
        else:
            newer.append(seg)
    newer.sort(key=lambda s: TIERS.index(plan.tiers[s.path]))  # stable: oldest first within a tier
    over = limits.max_bytes is not None and total - freed > limits.max_bytes
    short = floor is not None and free_bytes is not None and free_bytes + freed < floor
    if copied is not None and (over or short):
        # What the copy elsewhere already holds goes first, within a tier: what is only here stays.
        done = copied(newer)
        newer.sort(key=lambda s: (TIERS.index(plan.tiers[s.path]), s.path not in done))
    for seg in newer:  # until the size limits hold
        if limits.max_bytes is not None and total - freed > limits.max_bytes:
            take(seg, "max_bytes")
        elif floor is not None and free_bytes is not None and free_bytes + freed < floor:
            take(seg, "min_free" if limits.min_free is not None and free_bytes + freed < limits.min_free else "reserve")
        else:
            break
    plan.kept = len(segments) - len(plan.delete)
    return plan


def tier_of(seg: Segment, end: float, motion: Spans, marks: Spans) -> str:
    """The longest-kept tier a segment overlaps; a sub stream's footage (cam_1.sub) goes by its
    camera's motion and marks."""
    camera = seg.camera_id.split(".", 1)[0]
    until = seg.start + 3600 if end == float("inf") else end
    for tier, spans in (("marked", marks), ("motion", motion)):
        if any(s <= until and e >= seg.start for s, e in spans.get(camera, ())):
            return tier
    return "continuous"


def _segment_ends(segments: Iterable[Segment]) -> dict[Path, float]:
    """A segment ends when it was last written, and at the latest where the camera's next one starts
    (after an outage the next may start much later). The newest never ends: it never expires."""
    ends: dict[Path, float] = {}
    last: dict[str, Segment] = {}
    for seg in segments:
        if seg.camera_id in last:
            prev = last[seg.camera_id]
            ends[prev.path] = min(seg.start, max(prev.mtime, prev.start))
        last[seg.camera_id] = seg
    for seg in last.values():
        ends[seg.path] = float("inf")
    return ends


def _usage(path: Path) -> Any:
    """shutil.disk_usage of the filesystem holding path (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe)


def free_space(path: Path) -> int:
    """Bytes free for this user on the filesystem holding path."""
    return int(_usage(path).free)


def apply_plan(plan: RetentionPlan, root: Path) -> int:
    """Deletes the planned segments (already-gone files are fine: prune is idempotent) and the
    day/hour folders left empty. Returns the bytes freed."""
    freed = 0
    emptied: set[Path] = set()
    for seg in plan.delete:
        try:
            seg.path.unlink()
            freed += seg.size
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StorageError(f"cannot delete {seg.path}: {exc.strerror or exc}") from None
        emptied.add(seg.path.parent)
    # Hour folders, then the day folders above them, once each (not once per deleted file).
    for folder in sorted(emptied | {f.parent for f in emptied}, key=lambda p: len(p.parts), reverse=True):
        if folder != root and folder.is_relative_to(root):
            with contextlib.suppress(OSError):  # not empty (or gone): leave it
                folder.rmdir()
    return freed


def filesystem_size(path: Path) -> int:
    return int(_usage(path).total)


def unreachable_min_free(root: Path, limits: Limits) -> str | None:
    """A warning when min_free can never be met (it is most of the filesystem or more): retention
    would then delete all but the newest segment, again and again."""
    if limits.min_free is None:
        return None
    try:
        total = filesystem_size(root)
    except OSError:
        return None
    if limits.min_free < total * MIN_FREE_SHARE:
        return None
    return (
        f"storage.retention.min_free ({format_size(limits.min_free)}) cannot be met on the filesystem holding "
        f"{root} ({format_size(total)} in all): it is ignored, and room for {RESERVE_SEGMENTS} segments per "
        "camera is kept instead; set min_free well below the filesystem's size (or null)"
    )


MIN_FREE_SHARE = 0.9  # a min_free above this share of the filesystem cannot be met


def prune(
    root: Path,
    limits: Limits,
    now: float,
    free_probe: Callable[[Path], int] = free_space,
    dry_run: bool = False,
    reserve_segments: int = RESERVE_SEGMENTS,
) -> RetentionPlan:
    """reserve_segments: keep room for this many more segments per camera, whatever the limits say."""
    segments = scan_segments(root)
    reserve = reserve_bytes(segments, reserve_segments) if reserve_segments else 0
    free = free_probe(root) if limits.min_free is not None or reserve else None
    motion, marks = kept_spans(root, {s.camera_id.split(".", 1)[0] for s in segments}) if limits.tiered else ({}, {})
    plan = plan_retention(segments, limits, now, free, reserve, motion, marks, lambda some: copied_segments(root, some))
    if not dry_run:
        apply_plan(plan, root)
    return plan


COPY_FOLDER = ".copy"  # under the root: the copy elsewhere's index (camctl.recording.copies)


def copied_segments(root: Path, segments: list[Segment]) -> set[Path]:
    """Those of the segments that a copy elsewhere holds, checked (its index, hour by hour)."""
    hours = {p.relative_to(root).parent for p in (s.path for s in segments) if p.is_relative_to(root)}
    files: set[str] = set()
    for hour in hours:
        for index in (root / COPY_FOLDER).glob(f"*/index/{hour.as_posix()}.jsonl"):
            files |= {str(e.get("file")) for e in json_lines(index)}
    return {s.path for s in segments if s.path.is_relative_to(root) and s.path.relative_to(root).as_posix() in files}


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file beside the footage; lines torn by a crash are skipped, a
    missing file is none."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                found.append(entry)
    return found


def kept_spans(root: Path, cameras: Iterable[str]) -> tuple[Spans, Spans]:
    """Each camera's motion (motion.jsonl) and marks (marks.jsonl), as (start, end) spans."""
    motion: Spans = {}
    marks: Spans = {}
    for camera in cameras:
        for name, found in (("motion.jsonl", motion), ("marks.jsonl", marks)):
            found[camera] = sorted(_spans_in(root / camera / name))
    return motion, marks


def _spans_in(path: Path) -> list[tuple[float, float]]:
    return [(entry["start"], entry["end"]) for entry in read_spans(path)]


def read_spans(path: Path) -> list[dict[str, Any]]:
    """The lines of a span log beside the footage (motion.jsonl, marks.jsonl), each with float
    start and end, oldest first; lines torn by a crash are skipped, a missing file is none."""
    spans = []
    for entry in json_lines(path):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            spans.append({**entry, "start": float(entry["start"]), "end": float(entry["end"])})
    return sorted(spans, key=lambda e: e["start"])


def write_atomically(path: Path, data: bytes) -> None:
    """Written beside the target and renamed: a reader never sees half a file (StorageError, exit 5)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None
