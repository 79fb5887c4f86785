"""`camctl config check` and `camctl config show`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from camctl.config import Config, effective_config
from camctl.offsite.rclone import remote_problem
from camctl.runall.children import memory_warning
from camctl.secrets import redact
from camctl.storage.retention import Limits, unreachable_min_free


@dataclass(frozen=True)
class ConfigCheck:
    source: str
    cameras: tuple[str, ...]
    warnings: tuple[str, ...]  # valid, but will not do what it says (a min_free the disk cannot hold)

    def to_json(self) -> dict[str, Any]:
        return {"ok": True, "source": self.source, "cameras": list(self.cameras), "warnings": list(self.warnings)}


def check_config(config: Config) -> ConfigCheck:
    """The config parsed already (errors are exit 2 there); what is left is what only the box can tell."""
    copy = config.offsite
    found = [
        unreachable_min_free(config.storage.root, Limits.of(config.storage.retention)),
        memory_warning(len(config.select(None))),
        remote_problem(copy.to, copy.rclone, copy.config) if copy is not None else None,
    ]
    return ConfigCheck(config.source, tuple(config.cameras), tuple(w for w in found if w))


def shown_config(config: Config) -> dict[str, Any]:
    """The effective config (defaults filled in, ${ENV} resolved) with every secret masked."""
    data: dict[str, Any] = redact.data(effective_config(config))
    return data
