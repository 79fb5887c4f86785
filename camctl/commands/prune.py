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
