"""The retention that makes the disk a circular buffer: limits by age (per tier: continuous,
motion, marked), by size and by free space, a plan of whole segments to delete, and pruning."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from camctl.errors import StorageError
from camctl.storage.copy_index import copied_segments
from camctl.storage.files import filesystem_size, free_space
from camctl.storage.layout import Segment, scan_segments
from camctl.storage.spans import Spans, kept_spans
from camctl.units import format_size

if TYPE_CHECKING:
    from camctl.config import RetentionConfig


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
