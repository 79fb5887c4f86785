"""`camctl prune`: the circular buffer's retention, for timers and by hand; `--plan` for capacity."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from camctl.config import RetentionConfig
from camctl.errors import UsageError
from camctl.recording.index import build_index
from camctl.storage.files import free_space
from camctl.storage.layout import scan_segments
from camctl.storage.retention import TIERS, Limits, prune
from camctl.units import format_size, parse_duration, parse_size


def limits_from(retention: RetentionConfig, max_age: str | None, max_bytes: str | None, min_free: str | None) -> Limits:
    """The configured limits, with command-line overrides; bad values are usage errors (exit 2)."""
    configured = Limits.of(retention)  # the motion and marked tiers included
    try:
        return replace(
            configured,
            max_age=parse_duration(max_age) if max_age is not None else configured.max_age,
            max_bytes=parse_size(max_bytes) if max_bytes is not None else configured.max_bytes,
            min_free=parse_size(min_free) if min_free is not None else configured.min_free,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@dataclass(frozen=True)
class Deleted:
    camera_id: str
    path: Path
    start: float
    bytes: int
    reason: str


@dataclass(frozen=True)
class PruneReport:
    root: Path
    dry_run: bool
    deleted: tuple[Deleted, ...]
    freed_bytes: int
    kept: int

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "dry_run": self.dry_run,
            "deleted": [
                {
                    "camera_id": d.camera_id,
                    "path": str(d.path),
                    "start": datetime.fromtimestamp(d.start, UTC).isoformat().replace("+00:00", "Z"),
                    "bytes": d.bytes,
                    "reason": d.reason,
                }
                for d in self.deleted
            ],
            "freed_bytes": self.freed_bytes,
            "freed_human": format_size(self.freed_bytes),
            "kept": self.kept,
        }


def prune_report(root: Path, limits: Limits, now: float, dry_run: bool) -> PruneReport:
    plan = prune(root, limits, now, dry_run=dry_run)
    deleted = tuple(Deleted(s.camera_id, s.path, s.start, s.size, plan.reasons[s.path]) for s in plan.delete)
    return PruneReport(root, dry_run, deleted, plan.freed_bytes, plan.kept)


@dataclass(frozen=True)
class CameraRate:
    bitrate_kbps: float
    bytes_per_hour: int
    measured_seconds: float


@dataclass(frozen=True)
class CapacityPlan:
    """How many hours of recording fit, from the bitrates measured over the last hour."""

    root: Path
    cameras: dict[str, CameraRate]
    bytes_per_hour: int
    recordings_bytes: int
    free_bytes: int
    budget_bytes: int
    hours_fit: float | None
    target_hours: float | None
    tiers: dict[str, dict[str, Any]] = field(default_factory=dict)  # continuous/motion/marked: bytes, keep, going

    @property
    def enough(self) -> bool | None:
        if self.hours_fit is None or self.target_hours is None:
            return None
        return self.hours_fit >= self.target_hours

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "cameras": {
                cam: {
                    "bitrate_kbps": r.bitrate_kbps,
                    "bytes_per_hour": r.bytes_per_hour,
                    "measured_seconds": r.measured_seconds,
                }
                for cam, r in self.cameras.items()
            },
            "bytes_per_hour": self.bytes_per_hour,
            "recordings_bytes": self.recordings_bytes,
            "free_bytes": self.free_bytes,
            "budget_bytes": self.budget_bytes,
            "hours_fit": self.hours_fit,
            "target_hours": self.target_hours,
            "enough": self.enough,
            "tiers": self.tiers,
        }


def capacity_plan(
    root: Path, limits: Limits, now: float, free_bytes: int | None = None, window: float = 3600.0
) -> CapacityPlan:
    """The bitrates measured over the last `window` seconds against the room the limits leave."""
    free = free_space(root) if free_bytes is None else free_bytes
    cameras: dict[str, CameraRate] = {}
    used = 0
    for cam, index in build_index(root).items():
        used += sum(s.bytes for s in index.segments)
        recent = [s for s in index.segments if s.end >= now - window and s.duration > 0]
        seconds = sum(s.duration for s in recent)
        if seconds > 0:
            rate = sum(s.bytes for s in recent) / seconds  # bytes per second
            cameras[cam] = CameraRate(round(rate * 8 / 1000, 1), round(rate * 3600), round(seconds, 1))
    per_hour = sum(c.bytes_per_hour for c in cameras.values())
    budget = used + free - (limits.min_free or 0)
    if limits.max_bytes is not None:
        budget = min(budget, limits.max_bytes)
    budget = max(0, budget)
    hours = budget / per_hour if per_hour else None
    return CapacityPlan(
        root, cameras, per_hour, used, free, budget,
        None if hours is None else round(hours, 1), (limits.max_age or 0) / 3600 or None,
        tier_usage(root, limits, now, free),
    )  # fmt: skip


def tier_usage(root: Path, limits: Limits, now: float, free: int) -> dict[str, dict[str, Any]]:
    """Bytes per retention tier, how long each is kept, and what a prune would free of each now."""
    plan = prune(root, limits, now, lambda _root: free, dry_run=True)
    going = {seg.path for seg in plan.delete}
    held = dict.fromkeys(TIERS, 0)
    freed = dict.fromkeys(TIERS, 0)
    for seg in scan_segments(root):
        tier = plan.tiers.get(seg.path, "continuous")
        held[tier] += seg.size
        freed[tier] += seg.size if seg.path in going else 0
    return {tier: {"bytes": held[tier], "keep_seconds": limits.age_of(tier), "going_bytes": freed[tier]}
            for tier in TIERS}  # fmt: skip
