"""Rendering results for people (rich tables on stderr/stdout) and scripts (JSON on stdout)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from camctl.secrets import redact

if TYPE_CHECKING:
    from rich.console import Console

    from camctl.commands.probe import ProbeResult


def print_json(data: Any) -> None:
    """JSON for scripts: passwords are masked even if one slipped into a value."""
    sys.stdout.write(json.dumps(redact.data(data), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def error_line(message: str) -> None:
    """The one line a failing command prints: no traceback, no password."""
    sys.stderr.write(f"camctl: {redact(message)}\n")
    sys.stderr.flush()


def _num(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def probe_table(results: Sequence[ProbeResult]) -> Any:
    from rich.table import Table

    table = Table(title="camctl probe", title_justify="left", header_style="bold")
    for name in ("camera", "status", "video", "fps", "bitrate", "keyframes", "first frame"):
        table.add_column(name, justify="left" if name in ("camera", "status", "video") else "right")
    for r in results:
        if not r.online:
            table.add_row(r.camera_id, f"[red]✘ {r.error}[/red]", r.url, "", "", "", "")
            continue
        fps = _num(r.fps)
        if r.claimed_fps and r.fps and abs(r.claimed_fps - r.fps) > 0.1 * r.claimed_fps:
            fps += f" [yellow](claims {r.claimed_fps:g})[/yellow]"
        gop = f"{r.gop} ({r.gop_seconds:g}s)" if r.gop and r.gop_seconds else "> window"
        table.add_row(
            r.camera_id,
            "[green]✔ online[/green]",
            f"{r.codec} {r.width}x{r.height}",
            fps,
            f"{_num(r.bitrate_kbps, '{:.0f}')} kb/s",
            gop,
            f"{_num(r.first_frame_ms, '{:.0f}')} ms",
        )
    return table
