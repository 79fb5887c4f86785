"""Where camctl keeps its data when the config does not say; tests redirect it via the env."""

from __future__ import annotations

import os
from pathlib import Path

# The data folder of the systemd service (recipes/camctl.service, scripts/install).
SYSTEM_DATA_DIR = Path("/var/lib/camctl")


def default_data_dir() -> Path:
    """$CAMCTL_DATA_DIR, else $XDG_DATA_HOME/camctl, else ~/.local/share/camctl."""
    explicit = os.environ.get("CAMCTL_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "camctl"
