"""`camctl copy`: what waits is copied now (for a timer, by hand, or to a USB disk with --to)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camctl.config import Config, CopyConfig
from camctl.errors import UsageError
from camctl.offsite.rclone import CopyTargetError
from camctl.recording.copier import Copier
from camctl.units import format_size


@dataclass(frozen=True)
class CopyResult:
    to: str
    copied: int
    bytes: int
    waiting: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"to": self.to, "copied": self.copied, "bytes": self.bytes, "waiting": self.waiting,
                "seconds": round(self.seconds, 2)}  # fmt: skip

    def line(self) -> str:
        rate = f", {format_size(self.bytes / self.seconds)}/s" if self.bytes and self.seconds > 0 else ""
        done = f"{self.copied} segment(s), {format_size(self.bytes)} copied to {self.to} in {self.seconds:.1f}s{rate}"
        return done + (f"; {self.waiting} still waiting" if self.waiting else "; nothing waits")


def copy_target(config: Config, to: str | None, what: str | None) -> CopyConfig:
    """The configured copy, or one given on the command line (config's other settings kept)."""
    base = config.offsite
    if to is None and base is None:
        raise UsageError("no copy configured: add copy: {to: nas:camctl} to the config, or give --to")
    settings = base.model_dump() if base is not None else {}
    if to is not None:
        settings["to"] = to
    if what is not None:
        settings["what"] = what
    try:
        return CopyConfig.model_validate(settings)
    except ValueError as exc:
        raise UsageError(f"copy: {str(exc).splitlines()[-1].strip()}") from None


def copy_now(root: Path, copy: CopyConfig, segment_seconds: float) -> CopyResult:
    """Everything closed and wanted, oldest first; CopyTargetError (exit 3) when the target fails."""
    copier = Copier(root, copy, segment_seconds)
    started = time.monotonic()
    try:
        copier.round()
    except CopyTargetError as exc:
        raise CopyTargetError(f"copy to {copy.shown}: {exc}") from None
    status = copier.status
    return CopyResult(copy.shown, status.copied_segments, status.copied_bytes, status.backlog_segments,
                      time.monotonic() - started)  # fmt: skip
