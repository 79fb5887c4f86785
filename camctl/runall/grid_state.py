"""What run-all's grid worker is doing, for the front's /status and /metrics.

The grid worker has no HTTP of its own: once a second it replaces a small JSON file beside the
workers' sockets (frames, ticks skipped, the encoder ladder's rung and steps), and the front reads
it when asked. A file older than a few seconds belongs to a grid that is not running any more.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camctl.metrics import Family

if TYPE_CHECKING:  # the front reads the file without loading the encoders
    from camctl.encoding.grid import GridStats

STATE_FILE = "grid.json"
STALE_SECONDS = 5.0
SHOWN_STEPS = 20  # the latest ladder steps kept in the file (all of them are counted)


def write_state(folder: Path, stats: GridStats) -> None:
    fps, kbps = stats.rates()
    state = {
        "frames": stats.frames,
        "skipped": stats.skipped,
        "fps": round(fps, 2),
        "kbps": round(kbps, 1),
        "bitrate_kbps": stats.bitrate // 1000,
        "preset": stats.preset,
        "encoded_fps": stats.encoded_fps,
        "ladder_steps": len(stats.steps),
        "ladder": [step.to_json() for step in stats.steps[-SHOWN_STEPS:]],
        "updated": time.time(),
    }
    tmp = folder / f".{STATE_FILE}.tmp"
    with contextlib.suppress(OSError):  # a full /tmp must not stop the grid
        tmp.write_text(json.dumps(state))
        tmp.replace(folder / STATE_FILE)


def read_state(folder: Path) -> dict[str, Any] | None:
    """The grid's latest state, or None when there is none (not started yet, or stale)."""
    try:
        state: dict[str, Any] = json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or time.time() - float(state.get("updated", 0)) > STALE_SECONDS:
        return None
    return state


def grid_families(state: dict[str, Any]) -> list[Family]:
    def one(name: str, kind: str, value: float, text: str) -> Family:
        return Family(name, kind, (f"{name} {value:g}",), text)

    return [
        one("camctl_grid_frames_total", "counter", state["frames"], "Grid frames encoded."),
        one("camctl_grid_skipped_ticks_total", "counter", state["skipped"], "Grid ticks lost to falling behind."),
        one("camctl_grid_fps", "gauge", state["fps"], "Grid frames per second, lately."),
        one("camctl_grid_encoded_fps", "gauge", state["encoded_fps"], "The grid's frame rate on the ladder's rung."),
        one("camctl_grid_ladder_steps_total", "counter", state["ladder_steps"], "Encoder ladder steps (down or up)."),
    ]
