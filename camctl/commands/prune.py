"""`camctl prune`: the circular buffer's retention, for timers and by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from camctl.config import RetentionConfig
from camctl.errors import UsageError
from camctl.storage import Limits, prune
from camctl.units import format_size, parse_duration, parse_size


def limits_from(retention: RetentionConfig, max_age: str | None, max_bytes: str | None, min_free: str | None) -> Limits:
    """The configured limits, with command-line overrides; bad values are usage errors (exit 2)."""
    try:
        return Limits(
            max_age=parse_duration(max_age) if max_age is not None else retention.max_age,
            max_bytes=parse_size(max_bytes) if max_bytes is not None else retention.max_bytes,
            min_free=parse_size(min_free) if min_free is not None else retention.min_free,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def prune_report(root: Path, limits: Limits, now: float, dry_run: bool) -> dict[str, Any]:
    plan = prune(root, limits, now, dry_run=dry_run)
    return {
        "root": str(root),
        "dry_run": dry_run,
        "deleted": [
            {
                "camera_id": s.camera_id,
                "path": str(s.path),
                "start": datetime.fromtimestamp(s.start, UTC).isoformat().replace("+00:00", "Z"),
                "bytes": s.size,
                "reason": plan.reasons[s.path],
            }
            for s in plan.delete
        ],
        "freed_bytes": plan.freed_bytes,
        "freed_human": format_size(plan.freed_bytes),
        "kept": plan.kept,
    }


def capacity_plan(
    root: Path, retention: RetentionConfig, free_bytes: int, now: float, window: float = 3600.0
) -> dict[str, Any]:
    """How many hours of recording fit, from the bitrates measured over the last `window` seconds."""
    from camctl.recording.index import build_index

    cameras: dict[str, dict[str, Any]] = {}
    used = 0
    for cam, index in build_index(root).items():
        used += sum(s.bytes for s in index.segments)
        recent = [s for s in index.segments if s.end >= now - window and s.duration > 0]
        seconds = sum(s.duration for s in recent)
        if seconds > 0:
            rate = sum(s.bytes for s in recent) / seconds  # bytes per second
            cameras[cam] = {
                "bitrate_kbps": round(rate * 8 / 1000, 1),
                "bytes_per_hour": round(rate * 3600),
                "measured_seconds": round(seconds, 1),
            }
    per_hour = sum(c["bytes_per_hour"] for c in cameras.values())
    budget = used + free_bytes - (retention.min_free or 0)
    if retention.max_bytes is not None:
        budget = min(budget, retention.max_bytes)
    budget = max(0, budget)
    hours = budget / per_hour if per_hour else None
    target = (retention.max_age or 0) / 3600 or None
    return {
        "root": str(root),
        "cameras": cameras,
        "bytes_per_hour": per_hour,
        "recordings_bytes": used,
        "free_bytes": free_bytes,
        "budget_bytes": budget,
        "hours_fit": None if hours is None else round(hours, 1),
        "target_hours": target,
        "enough": None if hours is None or target is None else hours >= target,
    }
