"""Rendering results for people (rich tables on stderr/stdout) and scripts (JSON on stdout)."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from camctl.config import BUILTIN_DEMO
from camctl.secrets import redact
from camctl.units import format_duration, format_size, iso_time

if TYPE_CHECKING:
    from rich.console import Console

    from camctl.analysis.motion import MotionEvent
    from camctl.commands.config import ConfigCheck
    from camctl.commands.grid import GridResult
    from camctl.commands.onvif import Discovered
    from camctl.commands.probe import ProbeResult
    from camctl.commands.prune import CapacityPlan, PruneReport
    from camctl.commands.record import RecordResult
    from camctl.commands.snapshot import Snapshot
    from camctl.config import CameraConfig, Config
    from camctl.encoding.grid import GridStats
    from camctl.events.store import Event
    from camctl.media.encoders import CodecCheck
    from camctl.onvif.device import Device
    from camctl.recording.clip import ClipResult
    from camctl.recording.index import CameraIndex, SegmentRecord


def print_json(data: Any) -> None:
    """JSON for scripts: passwords are masked even if one slipped into a value."""
    sys.stdout.write(json.dumps(redact.data(data), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not out.is_terminal:
        out.width = 160  # a file or pipe has no width: do not wrap tables at rich's 80 columns
    return out


def show(data: Any, human: Callable[[], Any], *, json_out: bool) -> None:
    """The one way a command's result reaches stdout: its JSON for scripts (`--json`), else what
    `human()` makes of it for people (a rich table or text, or lines printed one by one)."""
    if json_out:
        print_json(data)
        return
    shown = human()
    out = console()
    for part in shown if isinstance(shown, list) else [shown]:
        if isinstance(part, str):
            out.print(part, markup=False)  # text is shown as it is: [brackets] in a reason stay
        else:
            out.print(part)


def event_line(data: Any, human: Callable[[], str], *, json_out: bool) -> None:
    """One event of a stream of them (`camctl motion`): a JSON object per line, or a line for people."""
    if json_out:
        sys.stdout.write(json.dumps(redact.data(data)) + "\n")
        sys.stdout.flush()
    else:
        console().print(human(), markup=False)


def show_bytes(data: bytes) -> None:
    """A binary result (a JPEG) on stdout, for a pipe or a file."""
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def show_text(text: str) -> None:
    """Text as it is (YAML, a JSON Schema), on stdout."""
    sys.stdout.write(text)
    sys.stdout.flush()


def note(message: Any) -> None:
    """A line for the person on stderr, beside a result on stdout (where a file went, a banner)."""
    console(stderr=True).print(message, markup=False, soft_wrap=True)


def traceback_text(text: str) -> None:
    """--debug's traceback, on stderr, passwords masked."""
    sys.stderr.write(redact(text))


def error_line(message: str) -> None:
    """The one line a failing command prints: no traceback, no password."""
    sys.stderr.write(f"camctl: {redact(message)}\n")
    sys.stderr.flush()


@contextlib.contextmanager
def waiting(label: str, quiet: bool = False) -> Iterator[None]:
    """A spinner on a terminal's stderr while slow work runs; nothing in a pipe or with --json."""
    err = console(stderr=True)
    if quiet or not err.is_terminal:
        yield
        return
    with err.status(label):
        yield


def _num(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def probe_table(results: Sequence[ProbeResult]) -> Any:
    from rich.table import Table

    from camctl.media.audio import AudioInfo

    table = Table(title="camctl probe", title_justify="left", header_style="bold")
    for name in ("camera", "status", "video", "audio", "fps", "bitrate", "keyframes", "first frame", "transport"):
        table.add_column(name, justify="left" if name in ("camera", "status", "video", "audio") else "right")
    for r in results:
        if not r.online:
            table.add_row(r.camera_id, f"[red]✘ {r.error}[/red]", r.url, "", "", "", "", "", r.transport or "")
            continue
        fps = _num(r.fps)
        if r.claimed_fps and r.fps and abs(r.claimed_fps - r.fps) > 0.1 * r.claimed_fps:
            fps += f" [yellow](claims {r.claimed_fps:g})[/yellow]"
        gop = f"{r.gop} ({r.gop_seconds:g}s)" if r.gop and r.gop_seconds else "> window"
        table.add_row(
            r.camera_id,
            "[green]✔ online[/green]",
            f"{r.codec} {r.width}x{r.height}",
            AudioInfo(**r.audio).describe() if r.audio else "none",
            fps,
            f"{_num(r.bitrate_kbps, '{:.0f}')} kb/s",
            gop,
            f"{_num(r.first_frame_ms, '{:.0f}')} ms",
            r.transport or "",
        )
    return table


def onvif_table(device: Device) -> Any:
    """A device's identity, clock and profiles (stream URIs carry no credentials)."""
    from rich.table import Table

    who = " ".join(filter(None, (device.manufacturer, device.model))) or "unknown maker and model"
    table = Table(title=f"{device.address}: {who}", title_justify="left", header_style="bold",
                  caption=_device_caption(device), caption_justify="left")  # fmt: skip
    for name in ("profile", "codec", "size", "fps", "bitrate", "role", "stream URI"):
        table.add_column(name, justify="right" if name in ("fps", "bitrate") else "left")
    main, sub = device.main, device.sub
    for p in device.profiles:
        role = "main" if p is main else "sub" if p is sub else ""
        size = f"{p.width}x{p.height}" if p.width else "?"
        rate = f"{p.bitrate_kbps} kb/s" if p.bitrate_kbps else ""
        table.add_row(p.token, p.codec or "?", size, _num(p.fps, "{:g}"), rate, role, p.stream_uri or "")
    return table


def _device_caption(device: Device) -> str:
    parts = [f"firmware {device.firmware or '?'}", f"serial {device.serial or '?'}"]
    if device.clock_drift_s is not None:
        parts.append(f"clock {device.clock_drift_s:+.0f} s from this box's ({device.clock_source or '?'})")
    if device.snapshot_uri:
        parts.append(f"snapshot {device.snapshot_uri}")
    return " · ".join(parts)


def discover_table(found: Sequence[Discovered]) -> Any:
    from rich.table import Table

    table = Table(title="camctl discover", title_justify="left", header_style="bold")
    for name in ("address", "maker", "model", "name", "in the config", "profiles"):
        table.add_column(name)
    for item in found:
        f, device = item.found, item.device
        maker = (device.manufacturer if device else None) or f.maker or ""
        model = (device.model if device else None) or f.model or ""
        profiles = ", ".join(f"{p.width}x{p.height}" for p in device.profiles) if device else item.error or ""
        table.add_row(f.onvif_url, maker, model, f.name or "", item.configured or "[yellow]no[/yellow]", profiles)
    return table


def recordings_table(indexes: Sequence[CameraIndex]) -> Any:
    """Continuous spans and gaps per camera (times in UTC, like the file names); --json lists
    every segment."""
    from datetime import UTC, datetime

    from rich.table import Table

    from camctl.recording.index import GAP_TOLERANCE

    def when(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")

    def length(seconds: float) -> str:
        h, rest = divmod(round(seconds), 3600)
        return f"{h}h{rest // 60:02d}m{rest % 60:02d}s" if h else f"{rest // 60}m{rest % 60:02d}s"

    table = Table(title="camctl recordings (UTC)", title_justify="left", header_style="bold")
    for name in ("camera", "from", "to", "length", "segments", "frames", "size", "note"):
        table.add_column(name, justify="right" if name in ("length", "segments", "frames", "size") else "left")
    for index in indexes:
        rows: list[tuple[float, tuple[str, ...]]] = []
        span: list[SegmentRecord] = []
        spans: list[list[SegmentRecord]] = []
        for seg in index.segments:  # a span is on this disk or only in the copy, not both
            if span and (seg.start - span[-1].end > GAP_TOLERANCE or (seg.remote is None) != (span[-1].remote is None)):
                spans.append(span)
                span = []
            span.append(seg)
        spans += [span] if span else []
        for run in spans:
            first, last = run[0], run[-1]
            note = "" if all(s.journalled for s in run) else "[yellow]being written or cut short[/yellow]"
            note = "[cyan]in the copy only (copy.to)[/cyan]" if first.remote is not None else note
            frames, size = str(sum(s.frames for s in run)), format_size(sum(s.bytes for s in run))
            span_row = (when(first.start), when(last.end), length(last.end - first.start), str(len(run)), frames)
            rows.append((first.start, (*span_row, size, note)))
        for gap in index.gaps:
            rows.append(
                (
                    gap.start,
                    (
                        when(gap.start),
                        when(gap.end),
                        length(gap.end - gap.start),
                        "",
                        "",
                        "",
                        f"[red]gap: {gap.reason}[/red]",
                    ),
                )
            )
        if not rows:
            table.add_row(index.camera_id, "-", "-", "", "", "", "", "nothing recorded")
        for n, (_t, cells) in enumerate(sorted(rows)):
            table.add_row(index.camera_id if n == 0 else "", *cells)
    return table


def status_table(cameras: Sequence[dict[str, Any]], source: str, copy: dict[str, Any] | None = None) -> Any:
    from rich.table import Table

    table = Table(title=f"camctl status ({source})", title_justify="left", header_style="bold",
                  caption=copy_line(copy) if copy else None, caption_justify="left")  # fmt: skip
    for name in ("node", "camera", "online", "fps", "bitrate", "dropped", "uptime", "last frame", "reconnects",
                 "decoder", "streams (decoded)", "recording", "error"):  # fmt: skip
        table.add_column(name, justify="right" if name in ("fps", "bitrate", "dropped", "uptime", "last frame",
                                                           "reconnects") else "left")  # fmt: skip
    for c in cameras:
        online = "[green]✔ online[/green]" if c.get("online") else "[red]✘ offline[/red]"
        uptime = c.get("uptime_seconds")
        age = c.get("last_frame_age_ms")
        table.add_row(
            str(c.get("node") or "-"),
            str(c["camera_id"]),
            online,
            _num(c.get("fps")) if c.get("online") else "-",
            f"{_num(c.get('bitrate_kbps'), '{:.0f}')} kb/s" if c.get("online") else "-",
            str(c.get("dropped_frames", "-")),
            _uptime(uptime) if c.get("online") and uptime is not None else "-",
            f"{age / 1000:.1f}s ago" if age is not None else "-",
            str(c.get("reconnects", "-")),
            str(c.get("decoder") or "-"),
            _streams(c),
            _recording(c),
            f"[red]{c['error']}[/red]" if c.get("error") else "",
        )
    return table


def copy_line(copy: dict[str, Any]) -> str:
    """The copy elsewhere in one line: its state, what waits, the last error."""
    backlog = copy.get("backlog") or {}
    line = f"copy to {copy.get('to')}: {copy.get('state')}"
    if backlog:
        line += f", {backlog.get('segments', 0)} segment(s) / {format_size(backlog.get('bytes') or 0)} waiting"
        if backlog.get("oldest_seconds") is not None:
            line += f" (oldest {format_duration(float(backlog['oldest_seconds']))})"
    lag = copy.get("lag_seconds")
    if lag:
        line += f", copied {lag['p50']:.0f}s after close (p95 {lag['p95']:.0f}s)"
    if copy.get("last_error"):
        return f"[red]{line}; {copy['last_error']}[/red]"
    return line


def _uptime(seconds: float) -> str:
    s = int(seconds)
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s"


def _streams(status: dict[str, Any]) -> str:
    """Each stream, how it is decoded and its rate: `main off 30 · sub full 15`."""
    streams = status.get("streams") or {}
    down = "[red]down[/red]"
    shown = [f"{name} {s.get('decode', '?')} {_num(s.get('fps'), '{:.0f}')}" if s.get("online") else f"{name} {down}"
             for name, s in streams.items()]  # fmt: skip
    return " · ".join(shown) or "-"


def _recording(status: dict[str, Any]) -> str:
    state = status.get("recording")
    if state is None:
        return "-"  # this camctl only ingests
    if status.get("recording_error"):
        return f"[red]{state}: {status['recording_error']}[/red]"
    return f"[green]{state}[/green]" if state == "recording" else str(state)


def codecs_table(checks: Sequence[CodecCheck]) -> Any:
    from rich.table import Table

    table = Table(title="camctl probe --encoders (1920x1080)", title_justify="left", header_style="bold")
    for name in ("codec", "kind", "hardware", "status", "fps"):
        table.add_column(name, justify="right" if name == "fps" else "left")
    for c in checks:
        status = "[green]✔ available[/green]" if c.available else f"[red]✘ {c.reason}[/red]"
        table.add_row(c.name, c.kind, "yes" if c.hardware else "no", status, _num(c.fps))
    return table


def record_summary_lines(result: RecordResult) -> list[str]:
    """One line per camera when `camctl record` stops."""
    lines = []
    for c in result.cameras:
        problem = f"; last error: {c.error}" if c.error else ""
        lost = f" ({c.storage_lost_seconds:g}s lost to storage)" if c.storage_lost_seconds else ""
        mute = "; it announced audio but sent none" if c.audio and not c.audio_packets and c.frames else ""
        lines.append(f"{c.camera_id}: {c.segments} segment(s), {c.frames} frames, {c.gaps} gap(s){lost}{mute}{problem}")
    return lines


def clip_lines(result: ClipResult) -> tuple[str, list[str]]:
    """What `camctl clip` says: the clip, then one line per gap inside it."""
    head = (
        f"{result.camera_id}: {format_duration(result.end - result.start)} from {iso_time(result.start)}, "
        f"{result.frames} frames, {format_size(result.bytes)} -> {result.path}"
    )
    gaps = [
        f"gap: {iso_time(g.start)} to {iso_time(g.end)} ({format_duration(g.end - g.start)}): {g.reason}"
        for g in result.gaps
    ]
    return head, gaps


def run_all_banner(config: Config, cameras: Sequence[CameraConfig]) -> str:
    """Where to look, when run-all starts (credentials masked)."""
    from camctl.bus.embedded import EMBEDDED_URL

    base = config.http.public_url
    first = f"{base}/{cameras[0].slug if cameras else 'cam1'}"
    what = "the built-in demo" if config.source == BUILTIN_DEMO else config.source
    return (
        f"camctl run-all: {len(cameras)} camera(s) from {what}\n"
        f"  live view   {base}/   (every camera in the browser; a player: {first}/live.mp4)\n"
        f"  frames      {first}/frame.jpg\n"
        f"  status      camctl status   or   {base}/status\n"
        f"  events      {redact(config.nats.url or EMBEDDED_URL)}   seguranca.camera.frame, seguranca.camera.status\n"
        f"  recordings  {config.storage.root}   (camctl recordings, camctl clip)\n"
        "Stop with Ctrl-C."
    )


def snapshot_line(shot: Snapshot, output: str) -> str:
    size = f"{len(shot.jpeg) / 1000:.0f} KB"
    return f"{shot.camera_id}: {shot.width}x{shot.height} JPEG, {size} ({shot.path}) -> {output}"


def prune_lines(report: PruneReport) -> list[str]:
    """One line per segment deleted (or that would be, with --dry-run), then the total."""
    verb = "would delete" if report.dry_run else "deleted"
    lines = [f"{verb} {d.path} ({d.reason})" for d in report.deleted]
    freed = format_size(report.freed_bytes)
    lines.append(f"{verb} {len(report.deleted)} segment(s), {freed}; {report.kept} kept in {report.root}")
    return lines


def plan_lines(plan: CapacityPlan) -> tuple[list[str], str | None]:
    """What `camctl prune --plan` says, and its warning when max_age will not be met."""
    tiers = _tier_lines(plan)
    if not plan.cameras:
        return [f"no recent recordings in {plan.root} to measure; run camctl record for a few minutes", *tiers], None
    lines = [
        f"{cam}: {r.bitrate_kbps:.0f} kbit/s, {format_size(r.bytes_per_hour)}/hour" for cam, r in plan.cameras.items()
    ]
    lines.append(
        f"all cameras: {format_size(plan.bytes_per_hour)}/hour; room for recordings "
        f"{format_size(plan.budget_bytes)} (recorded {format_size(plan.recordings_bytes)} "
        f"+ free {format_size(plan.free_bytes)} - min_free): {plan.hours_fit or 0:.1f} h"
    )
    lines += tiers
    warning = None
    if plan.enough is False:
        warning = (
            f"warning: {plan.hours_fit or 0:.1f} h fit, fewer than the {plan.target_hours or 0:g} h kept by max_age: "
            "the oldest footage will go early (add disk, lower the bitrate, or record fewer cameras)"
        )
    return lines, warning


def _tier_lines(plan: CapacityPlan) -> list[str]:
    """Bytes per retention tier, how long it stays, what a prune would free of it now."""
    lines = []
    for tier, usage in plan.tiers.items():
        keep = usage["keep_seconds"]
        going = f", {format_size(usage['going_bytes'])} of it goes now" if usage["going_bytes"] else ""
        kept = f"kept {format_duration(keep)}" if keep is not None else "kept while the disk allows"
        lines.append(f"{tier}: {format_size(usage['bytes'])}, {kept}{going}")
    return lines


def grid_line(result: GridResult) -> str:
    return (
        f"grid: {result.frames} frames in {result.seconds:.1f}s ({result.fps} fps, "
        f"{result.kbps:.0f} kbps, {result.skipped} skipped) into {result.output}"
    )


class GridProgress:
    """The grid's running figures on one terminal line, rewritten about once a second."""

    def __init__(self, cameras: int) -> None:
        self.cameras = cameras
        self.shown = False

    def __call__(self, stats: GridStats) -> None:
        fps, kbps = stats.rates()
        seconds = int(time.monotonic() - stats.started)
        clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        sys.stderr.write(
            f"\rgrid {clock}  {fps:5.1f} fps  {kbps:6.0f} kbps (target {stats.bitrate // 1000})"
            f"  skipped {stats.skipped}  cameras {stats.online}/{self.cameras}   "
        )
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def config_check_line(check: ConfigCheck) -> str:
    return f"{check.source}: OK, {len(check.cameras)} camera(s): {', '.join(check.cameras)}"


def motion_line(event: MotionEvent) -> str:
    """One line per motion event: `12:00:03 cam_1 motion started (score 4.2%, 1 box)`."""
    at = event.start if event.state == "start" else (event.end or event.start)
    when = time.strftime("%H:%M:%S", time.localtime(at))
    if event.state == "start":
        boxes = f"{len(event.boxes)} box" + ("es" if len(event.boxes) != 1 else "")
        return f"{when} {event.camera_id} motion started (score {event.score:.1%}, {boxes})"
    return f"{when} {event.camera_id} motion ended after {at - event.start:.1f}s (peak score {event.score:.1%})"


def events_table(events: Sequence[Event], more: bool) -> Any:
    """What happened, newest first (times in UTC); `camctl events show ID` for one."""
    from datetime import UTC, datetime

    from rich.table import Table

    table = Table(title="camctl events (UTC, newest first)", title_justify="left", header_style="bold")
    for name in ("id", "camera", "label", "severity", "zones", "start", "length", "score", "source", "reviewed"):
        table.add_column(name, justify="right" if name in ("length", "score") else "left")
    for event in events:
        length = "going on" if event.end is None else format_duration(round(max(0.0, event.end - event.start)))
        table.add_row(event.id, event.camera_id, event.label, event.severity, ", ".join(event.zones) or "-",
                      datetime.fromtimestamp(event.start, UTC).strftime("%Y-%m-%d %H:%M:%S"), length,
                      f"{event.score:.2f}" if event.source != "mark" else "-", event.source,
                      "yes" if event.reviewed else "")  # fmt: skip
    if more:
        return [table, f"more: camctl events --before {iso_time(events[-1].start)}"]
    return table


def event_lines(event: Event) -> list[str]:
    """One event for people: what, where, when, how long, how sure."""
    took = format_duration(round(event.end - event.start, 1)) if event.end is not None else ""
    end = "going on" if event.end is None else f"{iso_time(event.end)} ({took})"
    return [
        f"{event.id}: {event.label} on {event.camera_id} ({event.stream}), {event.severity}, from {event.source}",
        f"  from {iso_time(event.start)} to {end}, last seen {iso_time(event.last_seen)}",
        f"  score {event.score:.2f}, zones {', '.join(event.zones) or 'none'}, "
        f"{'reviewed' if event.reviewed else 'not reviewed'}{', a thumbnail' if event.has_thumbnail else ''}",
    ]
