"""The Typer app: parse, call one plain function, render, map errors to exit codes.

Each command imports its `camctl.commands` module when it runs, so that PyAV, aiohttp and NATS load
only for the commands that need them (`--help` and a warm snapshot stay fast).

Exit codes: 0 ok, 1 unexpected, 2 usage/config, 3 camera unreachable/timeout,
4 authentication refused, 5 storage (not writable / full), 6 no footage in the requested range.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, cast

import typer
import yaml
from typer.core import TyperGroup
from typer.exceptions import TyperException

from camctl import __version__, render
from camctl.config import CameraConfig, Config, read_config
from camctl.errors import CamctlError, ExitStatus, UsageError
from camctl.lifecycle import adopt_config, exit_now, private_files, tune_malloc
from camctl.render import console, error_line, waiting
from camctl.secrets import redact
from camctl.storage.retention import Limits
from camctl.units import format_duration, parse_duration, parse_time


class CamctlGroup(TyperGroup):
    """The one error boundary: domain errors become one line and their exit status."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CamctlError as exc:
            _report(ctx, exc, str(exc))
            ctx.exit(exc.exit_status)
        except (TyperException, typer.Exit, typer.Abort):
            raise  # usage errors, --help and exits: Typer renders them
        except KeyboardInterrupt:
            error_line("interrupted")
            ctx.exit(ExitStatus.INTERRUPTED)
        except BrokenPipeError:
            # The reader went away (`camctl snapshot cam_1 | head -c 10`): say nothing more, and
            # point stdout at /dev/null so that the flush at exit does not complain either.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(ExitStatus.ERROR)
        except Exception as exc:  # noqa: BLE001 - the last resort: no traceback unless --debug
            _report(ctx, exc, f"unexpected error: {type(exc).__name__}: {exc} (run with --debug for details)")
            ctx.exit(ExitStatus.ERROR)


def _report(ctx: Any, exc: BaseException, line: str) -> None:
    state = ctx.obj if isinstance(ctx.obj, State) else None
    if state is not None and state.debug:
        render.traceback_text("".join(traceback.format_exception(exc)))
    error_line(line)


@dataclass
class State:
    config_path: Path | None = None
    debug: bool = False
    log_json: bool = False
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = self.load()
        return self._config

    def load(self) -> Config:
        """The config file read (again, for a reload) and adopted: its secrets masked from now on."""
        return adopt_config(read_config(self.config_path))


app = typer.Typer(
    cls=CamctlGroup,
    name="camctl",
    help="Camera stream manager: probe cameras, take snapshots, record a rolling buffer, export clips.\n\n"
    "With no config file, camctl runs four built-in demo cameras (no network needed).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(
    cls=CamctlGroup, help="Validate and show the configuration.", no_args_is_help=True, add_completion=False
)
app.add_typer(config_app, name="config")
events_app = typer.Typer(cls=CamctlGroup, invoke_without_command=True, add_completion=False)  # help: its callback
app.add_typer(events_app, name="events")


def _version(value: bool) -> None:
    if value:
        render.show_text(f"camctl {__version__}\n")
        raise typer.Exit()


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            metavar="PATH",
            help="Config file. Default: $CAMCTL_CONFIG, ./camctl.yaml, /etc/camctl/camctl.yaml, else the demo.",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            help="Logs on stderr: text for a terminal, json (one object per line) for a log collector.",
        ),
    ] = LogFormat.TEXT,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.obj = State(config_path=config, debug=debug, log_json=log_format is LogFormat.JSON)
    private_files()
    _setup_logging(debug, log_format is LogFormat.JSON)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time (UTC ISO), level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class OneLineBadRequests(logging.Filter):
    """A malformed HTTP request (a scanner, a TLS hello on the plain port) is the client's problem:
    one WARNING line, not aiohttp's ERROR and traceback (thousands of lines in a day of scans)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.name == "aiohttp.server" and type(exc).__module__ == "aiohttp.http_exceptions":
            why = " ".join(str(exc).split())[:160] or type(exc).__name__
            record.msg, record.args = f"bad HTTP request ({record.getMessage()}): {why}", None
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _setup_logging(debug: bool, json_lines: bool = False) -> None:
    class Redacting(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.msg, record.args = redact(record.getMessage()), None
            return True

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(OneLineBadRequests())
    handler.addFilter(Redacting())
    handler.setFormatter(
        JsonLogFormatter() if json_lines else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, handlers=[handler], force=True)


def _state(ctx: typer.Context) -> State:
    """The root options; subcommand contexts inherit ctx.obj from the root."""
    return cast(State, ctx.obj)


CameraArgs = Annotated[
    list[str] | None, typer.Argument(metavar="CAM", help="Camera ids or slugs (default: all enabled).")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]


@app.command()
def probe(
    ctx: typer.Context,
    cameras: CameraArgs = None,
    json_out: JsonFlag = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", "-t", metavar="S", min=0.1, help="Seconds to connect and get a picture."),
    ] = None,
    seconds: Annotated[
        float, typer.Option("--seconds", metavar="S", min=0.2, help="Seconds of video to measure.")
    ] = 2.0,
    encoders: Annotated[
        bool,
        typer.Option("--encoders", help="Instead of cameras: which encoders/decoders open on this box, and 1080p fps."),
    ] = False,
    as_config: Annotated[
        bool, typer.Option("--config", help="With onvif://: print a ready camctl.yaml entry (main and sub).")
    ] = False,
) -> None:
    """Check cameras: reachable, credentials accepted, codec, resolution, and the fps, bitrate and
    keyframe interval measured over the stream (not just announced).

    A camera not configured yet: `camctl probe onvif://user:pass@192.168.1.101` asks it over ONVIF
    for its maker, model, firmware, profiles (codec, size, fps, bitrate, stream URI), snapshot URI
    and clock; --config prints a camctl.yaml entry with its largest profile as main and smallest as sub.

    Exit 0 when all are online, 3 when any is unreachable or timed out, 4 when any refused its credentials.
    With --encoders: NVENC, V4L2 M2M, VAAPI and libx264 (and NVDEC/V4L2 decoders) are each opened
    for real at 1920x1080; the table says which work, why the others do not, and encode fps.

    [dim]Examples: camctl probe cam_1 cam_2 --json;  camctl probe --encoders;
    camctl probe onvif://admin:secret@192.168.1.101 --config[/dim]
    """
    from camctl.commands import probe as command

    addresses = [c for c in cameras or [] if c.lower().startswith("onvif://")]
    if addresses:
        if len(addresses) != len(cameras or []):
            raise UsageError("give camera names or onvif:// addresses, not both")
        raise typer.Exit(_probe_onvif(addresses, timeout or 10.0, json_out, as_config))
    if as_config:
        raise UsageError("--config prints an entry for a camera given as onvif://user:pass@host")

    if encoders:
        with waiting("opening encoders and decoders…", quiet=json_out):
            checks = command.probe_codecs()
        render.show([c.to_json() for c in checks], lambda: render.codecs_table(checks), json_out=json_out)
        return

    selected = _state(ctx).config.select(cameras)
    with waiting(f"probing {len(selected)} camera(s)…", quiet=json_out):
        results = command.probe_cameras(selected, timeout, seconds)
    render.show([r.to_json() for r in results], lambda: render.probe_table(results), json_out=json_out)
    if not json_out:  # the table may wrap a reason; each failure also gets one whole line, as errors do
        for r in results:
            if not r.online:
                error_line(f"{r.camera_id}: {r.error} ({r.url})")
    raise typer.Exit(command.probe_exit_status(results))


def _probe_onvif(addresses: list[str], timeout: float, json_out: bool, as_config: bool) -> int:
    """Each address's device and profiles; the worst exit status of them."""
    from camctl.commands import onvif as command
    from camctl.onvif.address import parse_onvif_url
    from camctl.onvif.device import OnvifError

    worst, shown = 0, []
    for number, url in enumerate(addresses, start=1):
        address = parse_onvif_url(url)
        try:
            with waiting(f"asking {address.shown} over ONVIF…", quiet=json_out):
                device = command.probe_onvif(url, timeout)
        except OnvifError as exc:
            error_line(str(exc))
            worst = max(worst, int(exc.exit_status))
            continue
        if as_config:
            render.show_text(command.stanza(device, address, f"cam_{number}"))
        elif json_out:
            shown.append(device.to_json())
        else:
            render.console().print(render.onvif_table(device))
        if device.clock_warning and not json_out:
            error_line(f"warning: {device.clock_warning}")
    if json_out and not as_config:
        render.print_json(shown if len(addresses) > 1 else (shown[0] if shown else None))
    return worst


@app.command()
def discover(
    ctx: typer.Context,
    hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--host",
            "-H",
            metavar="ADDR",
            help="Probe this address or subnet (192.168.1.0/24) by unicast; repeatable. Default: multicast on the LAN.",
        ),
    ] = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="WS-Discovery port.")] = 3702,
    wait: Annotated[
        float, typer.Option("--wait", "-w", metavar="S", min=0.2, help="Seconds to collect answers.")
    ] = 3.0,
    user: Annotated[
        str | None, typer.Option("--user", "-u", envvar="CAMCTL_ONVIF_USER", help="Also read each one's profiles.")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            envvar="CAMCTL_ONVIF_PASSWORD",
            show_envvar=True,
            help="With --user (better from the environment than the command line).",
        ),
    ] = None,
    add: Annotated[
        bool, typer.Option("--add", help="Append the ones not configured yet to the config file (a .bak is kept).")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", "-t", metavar="S", min=0.1, help="Per device read.")] = 10.0,
    json_out: JsonFlag = False,
) -> None:
    """Find ONVIF cameras on the LAN (WS-Discovery), or at --host addresses and subnets.

    A table of the devices that answered (address, maker, model from their scopes) and whether
    the config already has them. With --user (and CAMCTL_ONVIF_PASSWORD) it reads their profiles
    too; --add appends them to the config as `onvif:` cameras, the password as
    ${CAMCTL_ONVIF_PASSWORD} (set it in the env file beside the config).

    Exit 0 when at least one device answered, 3 when none did.

    [dim]Examples: camctl discover;  camctl discover --host 192.168.1.0/24 --json;
    CAMCTL_ONVIF_PASSWORD=... camctl discover --user admin --add[/dim]
    """
    from camctl.commands import onvif as command
    from camctl.config import find_config_file

    state = _state(ctx)
    try:
        config = state.config
    except CamctlError:
        config = None  # a broken config must not stop finding cameras; --add says so below
    where = "by unicast to " + ", ".join(hosts) if hosts else "on the LAN (multicast)"
    with waiting(f"probing for ONVIF cameras {where} for {wait:g} s…", quiet=json_out):
        found = command.discover(hosts or [], port, wait, config, user, password, timeout)
    render.show([f.to_json() for f in found], lambda: render.discover_table(found), json_out=json_out)
    if add:
        path = find_config_file(state.config_path) or Path("camctl.yaml")
        added = command.add_to_config(path, found, user, password)
        message = (
            f"added {', '.join(added)} to {path} (the old one kept as {path.name}.bak)"
            if added
            else "nothing to add: every device found is in the config already"
        )
        render.note(message)
        if added and user:
            render.note(f"set {command.PASSWORD_ENV} where camctl runs (e.g. in the env file beside {path.name})")
    if not found:
        error_line(f"no ONVIF device answered {where} within {wait:g} s")
        raise typer.Exit(ExitStatus.UNREACHABLE)


@app.command()
def snapshot(
    ctx: typer.Context,
    camera: Annotated[str, typer.Argument(metavar="CAM", help="Camera id or slug, e.g. cam_1.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write here instead of stdout.")
    ] = None,
    quality: Annotated[int, typer.Option("--quality", "-q", min=1, max=100, help="JPEG quality, 1-100.")] = 85,
    width: Annotated[
        int | None, typer.Option("--width", "-w", min=16, metavar="W", help="Scale down to this width.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", "-t", metavar="S", min=0.1, help="Seconds to wait for a picture.")
    ] = None,
    cold: Annotated[
        bool, typer.Option("--cold", help="Go to the camera even when a running camctl has a fresh frame.")
    ] = False,
    stream: Annotated[
        str | None,
        typer.Option("--stream", "-s", metavar="NAME", help="main, sub, ... (default: the camera's snapshot role)."),
    ] = None,
) -> None:
    """Save a JPEG of what the camera sees now.

    Asks a camctl running on this box (ingest or run-all) for its latest frame first (warm, a few
    milliseconds), else connects to the camera (cold, up to one keyframe interval).

    [dim]Examples: camctl snapshot cam_1 > cam1.jpg;  camctl snapshot cam_2 -o door.jpg --width 640[/dim]
    """
    from camctl.commands import snapshot as command

    if output is not None and str(output) == "-":
        output = None
    if output is None and sys.stdout.isatty():
        raise UsageError(
            f"not writing a JPEG to the terminal: redirect it (camctl snapshot {camera} > {camera}.jpg) or use -o FILE"
        )
    cfg = _state(ctx).config
    cam = command.stream_of(cfg.camera(camera), stream)
    shot = command.snapshot(cfg.http, cam, quality, width, timeout, cold)
    if output is None:
        render.show_bytes(shot.jpeg)
        return
    command.save(shot, output)
    render.note(render.snapshot_line(shot, str(output)))


@app.command()
def prune(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Show what would go; delete nothing.")] = False,
    json_out: JsonFlag = False,
    max_age: Annotated[str | None, typer.Option(metavar="D", help="Override storage.retention.max_age (24h).")] = None,
    max_bytes: Annotated[
        str | None, typer.Option(metavar="B", help="Override storage.retention.max_bytes (500GB).")
    ] = None,
    min_free: Annotated[
        str | None, typer.Option(metavar="B", help="Override storage.retention.min_free (5GB).")
    ] = None,
    plan: Annotated[
        bool, typer.Option("--plan", help="Delete nothing; tell how many hours fit at the measured bitrates.")
    ] = False,
) -> None:
    """Delete the oldest whole segments until the retention limits hold (age, total size, free space).

    Safe beside a running recorder: the newest segment of each camera is never touched. Idempotent,
    for a systemd timer or cron.

    [dim]Examples: camctl prune --dry-run;  camctl prune --max-age 12h --json;  camctl prune --plan[/dim]
    """
    from camctl.commands import prune as command

    cfg = _state(ctx).config
    limits = command.limits_from(cfg.storage.retention, max_age, max_bytes, min_free)
    if plan:
        capacity = command.capacity_plan(cfg.storage.root, limits, time.time())
        lines, warning = render.plan_lines(capacity)
        render.show(capacity.to_json(), lambda: lines, json_out=json_out)
        if warning and not json_out:
            error_line(warning)
        return
    report = command.prune_report(cfg.storage.root, limits, time.time(), dry_run)
    render.show(report.to_json(), lambda: render.prune_lines(report), json_out=json_out)


@app.command()
def copy(
    ctx: typer.Context,
    to: Annotated[
        str | None, typer.Option("--to", metavar="TARGET", help="Copy there instead of copy.to (a remote or a folder).")
    ] = None,
    what: Annotated[str | None, typer.Option(metavar="WHAT", help="all, motion or marked (default copy.what).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Copy the footage off the box now: closed segments not yet at copy.to (or --to).

    Oldest first, each checked there (size and MD5) before it counts; run-all does this as it
    records. Remotes are rclone's: its config file or RCLONE_CONFIG_<NAME>_* variables.

    Exit 0 when all was copied, 3 when the target cannot be reached, 2 without a copy configured.

    [dim]Examples: camctl copy;  camctl copy --to /media/usb/camctl --what marked;  camctl copy --json[/dim]
    """
    from camctl.commands import copy as command

    cfg = _state(ctx).config
    target = command.copy_target(cfg, to, what)
    result = command.copy_now(cfg.storage.root, target, cfg.storage.segment_seconds)
    render.show(result.to_json(), lambda: [result.line()], json_out=json_out)


@app.command()
def record(
    ctx: typer.Context,
    cameras: CameraArgs = None,
    duration: Annotated[
        str | None, typer.Option("--duration", "-d", metavar="D", help="Stop after this long (e.g. 90s, 1h).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary when stopping.")] = False,
) -> None:
    """Record cameras into the rolling buffer: stream copy into MP4 segments of storage.segment_seconds,
    cut at keyframes, with retention after every segment. Runs until SIGTERM/SIGINT (or --duration);
    a stopped camera is retried with backoff and the gap is journalled.

    Exit 0 when every camera recorded; 5 when storage is not writable or footage was lost to it (a
    full disk); 3/4 when a camera never came up.

    [dim]Examples: camctl record;  camctl record cam_1 cam_2 --duration 10m[/dim]
    """
    from camctl.commands import record as command

    tune_malloc()
    cfg = _state(ctx).config
    selected = cfg.select(cameras)
    seconds = _duration(duration)
    _events_logged("camctl.record")
    result = command.record(selected, cfg.storage, Limits.of(cfg.storage.retention), seconds, cfg.ingest.stall_seconds)
    if json_out:
        render.print_json(result.to_json())
    else:
        for line in render.record_summary_lines(result):
            error_line(line)
    raise typer.Exit(result.exit_status)


def _events_logged(*loggers: str) -> None:
    """Long-running commands log their events (connects, segments, rate changes) at INFO."""
    for name in ("camctl.session", "camctl.transcode", "camctl.bitrate", "camctl.encoding", *loggers):
        logging.getLogger(name).setLevel(logging.INFO)


def _duration(text: str | None) -> float | None:
    try:
        return parse_duration(text) if text is not None else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _time_window(start: str | None, end: str | None) -> tuple[float | None, float | None]:
    now = time.time()
    try:
        return (
            parse_time(start, now) if start is not None else None,
            parse_time(end, now) if end is not None else None,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


FromOption = Annotated[
    str | None, typer.Option("--from", metavar="T", help="Start: ISO 8601 (2026-11-24T18:00:00Z), -10m, or now.")
]
ToOption = Annotated[str | None, typer.Option("--to", metavar="T", help="End: ISO 8601, -5m, or now.")]
StreamOption = Annotated[
    str | None, typer.Option("--stream", "-s", metavar="NAME", help="A recorded stream (default: main), e.g. sub.")
]


def _footage_of(camera: CameraConfig, stream: str | None) -> str:
    """The recordings folder of the camera's stream (cam_1, cam_1.sub)."""
    try:
        return camera.footage_of(stream)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@app.command()
def recordings(
    ctx: typer.Context,
    camera: Annotated[str | None, typer.Argument(metavar="[CAM]", help="One camera (default: all).")] = None,
    start: FromOption = None,
    end: ToOption = None,
    stream: StreamOption = None,
    json_out: JsonFlag = False,
) -> None:
    """List recorded segments (start, end, frames, bytes) and gaps with their reasons, per camera.

    Rebuilt from the files on every call: the disk is the truth. A recorded sub stream is listed
    as cam_1.sub.

    [dim]Examples: camctl recordings cam_1 --from -1h;  camctl recordings cam_1 --stream sub;
    camctl recordings --json[/dim]
    """
    from camctl.commands.recordings import list_recordings

    cfg = _state(ctx).config
    ids = [_footage_of(cfg.camera(camera), stream)] if camera is not None else None
    result = list_recordings(cfg.storage.root, ids, *_time_window(start, end), cfg.offsite)
    nothing = f"no recordings in {cfg.storage.root}"
    render.show(result.to_json(), lambda: render.recordings_table(result.cameras) if result.cameras else nothing,
                json_out=json_out)  # fmt: skip


@app.command()
def mark(
    ctx: typer.Context,
    camera: Annotated[str, typer.Argument(metavar="CAM", help="Camera id or slug, e.g. cam_1.")],
    start: Annotated[str, typer.Option("--from", metavar="T", help="Start: ISO 8601 or relative (-2m).")],
    end: Annotated[str, typer.Option("--to", metavar="T", help="End: ISO 8601, relative (-1m), or now.")] = "now",
    label: Annotated[str, typer.Option("--label", "-l", metavar="TEXT", help="What happened (one line).")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Mark a span of a camera's footage as one that matters (kept longer, shown on the timeline).

    Retention keeps what a mark overlaps for storage.retention.marked (beyond continuous and
    motion footage), and the timeline shows it, a link to its moment. Analysis services mark the same way on NATS
    (seguranca.camera.mark) or with POST /api/marks/<cam>.

    Exit 2 for an unknown camera or a bad span.

    [dim]Examples: camctl mark cam_1 --from -2m --label delivery;
    camctl mark cam_2 --from 2026-12-04T03:10:00Z --to 2026-12-04T03:14:00Z --label "van at the gate"[/dim]
    """
    from camctl.events.marks import MarkIntake
    from camctl.storage.retention import Limits

    config = _state(ctx).config
    try:
        mark = MarkIntake(lambda: config).add(camera, {"start": start, "end": end, "label": label}, "cli")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    kept = Limits.of(config.storage.retention).age_of("marked")
    shown = {**mark, "kept_seconds": kept}
    how_long = f"kept {format_duration(kept)}" if kept is not None else "kept as long as the disk allows"
    render.show(shown, lambda: f"{shown['camera_id']}: marked {shown['start']} – {shown['end']}"
                f"{' ' + repr(label) if label else ''}, {how_long}: {shown['link']}", json_out=json_out)  # fmt: skip


@app.command()
def clip(
    ctx: typer.Context,
    camera: Annotated[str | None, typer.Argument(metavar="CAM", help="Camera id or slug.")] = None,
    start: Annotated[
        str | None, typer.Option("--from", metavar="T", help="Start: ISO 8601 or relative (-10m).")
    ] = None,
    end: Annotated[str, typer.Option("--to", metavar="T", help="End: ISO 8601, relative (-5m), or now.")] = "now",
    event: Annotated[
        str | None, typer.Option("--event", metavar="ID", help="The footage around an event (camctl events).")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="The MP4 to write.")] = Path(
        "clip.mp4"
    ),
    stream: StreamOption = None,
    json_out: JsonFlag = False,
) -> None:
    """Export recorded footage of one camera into one MP4 (stream copy, fast start), from the keyframe
    at or before --from up to --to, or around an event (--event ID: from 5 s before it to 5 s after).
    Gaps inside the range are reported. Exit 6 when the range holds no footage.

    [dim]Examples: camctl clip cam_2 --from -10m -o door.mp4;
    camctl clip cam_1 --from 2026-11-24T18:00:00Z --to 2026-11-24T18:05:00Z -o 1800.mp4;
    camctl clip --event 1796000000.123456-a1b2c3 -o event.mp4[/dim]
    """
    from camctl.commands.clip import clip as export

    cfg = _state(ctx).config
    low: float | None
    high: float | None
    if event is not None:
        from camctl.commands.events import event_window

        if start is not None:
            raise UsageError("give --from/--to or --event, not both")
        camera_id, low, high = event_window(cfg.storage.root, event)
        if camera is not None and cfg.camera(camera).id != camera_id:
            raise UsageError(f"event {event} is of {camera_id}, not {camera}")
        camera = camera_id
    else:
        if camera is None or start is None:
            raise UsageError("give a camera and --from (camctl clip cam_1 --from -10m), or --event ID")
        low, high = _time_window(start, end)
    cam = cfg.camera(camera)
    if low is None or high is None:
        raise UsageError("--from and --to are both needed")
    result = export(cfg.storage.root, _footage_of(cam, stream), low, high, output, cfg.offsite)
    if json_out:
        render.print_json(result.to_json())
        return
    head, gaps = render.clip_lines(result)
    render.note(head)  # stdout may be the clip's consumer: the person's lines go to stderr
    for line in gaps:
        error_line(line)


@app.command()
def ingest(ctx: typer.Context, cameras: CameraArgs = None) -> None:
    """Decode cameras and hand their frames to analysis services: NATS events on
    seguranca.camera.frame (every frame, or analysis_fps) and seguranca.camera.status (every
    ingest.status_interval and at once on a change), the JPEG behind each event's url over HTTP
    (http.listen: /<cam>/frame.jpg, /<cam>/stream.mjpeg, /status, /healthz, /metrics).
    Runs until SIGTERM/SIGINT. With nats.url null it starts its own nats-server on 127.0.0.1:4222.

    [dim]Examples: camctl ingest;  camctl ingest cam_1 cam_2;  curl -o f.jpg http://127.0.0.1:8080/cam1/frame.jpg[/dim]
    """
    from camctl.commands.ingest import ingest as command

    tune_malloc()
    state = _state(ctx)
    cfg = state.config
    _events_logged("camctl.ingest", "camctl.record", "camctl.bus")
    # SIGHUP re-reads the config: cameras added, removed or changed, the others untouched.
    reload = None if cameras else state.load
    command(cfg, cfg.select(cameras), reload)


@app.command()
def motion(
    ctx: typer.Context,
    cameras: CameraArgs = None,
    fps: Annotated[
        float, typer.Option("--fps", min=0.5, max=30, help="Pictures per second looked at, per camera.")
    ] = 5,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON event per line on stdout.")] = False,
) -> None:
    """Watch cameras for motion (frame differencing on their analysis frames: shared memory on the
    camera's box, JPEG elsewhere) and publish seguranca.camera.motion events (camera_id, state
    start/end, start, end, score, boxes) when motion starts and ends. Needs camctl ingest or
    run-all feeding the cameras; sensitivity per camera: motion: {threshold, min_area, hold}.
    Runs until SIGTERM/SIGINT.

    [dim]Examples: camctl motion;  camctl motion cam_1 --fps 10 --json[/dim]
    """
    from camctl.commands.motion import run_motion

    cfg = _state(ctx).config
    logging.getLogger("camctl.motion").setLevel(logging.INFO)

    def show(event: Any) -> None:
        render.event_line(event.to_json(), lambda: render.motion_line(event), json_out=json_out)

    run_motion(cfg, cfg.select(cameras), fps, show)


@app.command()
def status(
    ctx: typer.Context,
    json_out: JsonFlag = False,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="A live table, refreshed every second.")] = False,
) -> None:
    """Camera health from every camctl on the NATS bus (all nodes of a fleet), else from the local
    HTTP server: online, fps, bitrate, dropped frames, uptime, last frame age, reconnects, last error.

    Exit 0 when every camera is online, 3 otherwise (or when no camctl service answers).

    [dim]Examples: camctl status;  camctl status --json;  camctl status --watch[/dim]
    """
    from camctl.commands.status import NoService, gather_status
    from camctl.render import status_table

    cfg = _state(ctx).config
    if watch:
        from rich.live import Live

        try:
            with Live(status_table([], "connecting…"), console=console(), auto_refresh=False) as live:
                while True:
                    try:
                        fleet = gather_status(cfg)
                        live.update(status_table(fleet.cameras, fleet.source, fleet.copy), refresh=True)
                    except NoService as exc:
                        live.update(status_table([], str(exc)), refresh=True)
                    time.sleep(1.0)  # the refresh period of the view, not a synchronisation
        except KeyboardInterrupt:
            raise typer.Exit(ExitStatus.OK) from None
    fleet = gather_status(cfg)
    data: dict[str, Any] = {"source": fleet.source, "cameras": fleet.cameras}
    if fleet.copy is not None:
        data["copy"] = fleet.copy
    render.show(data, lambda: status_table(fleet.cameras, fleet.source, fleet.copy), json_out=json_out)
    raise typer.Exit(ExitStatus.OK if fleet.all_online else ExitStatus.UNREACHABLE)


@app.command()
def grid(
    ctx: typer.Context,
    cameras: CameraArgs = None,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="TARGET",
            help="grid.mp4, grid.mkv, rtsp://server/path, an HLS folder, or - (MPEG-TS on stdout).",
        ),
    ] = "grid.mp4",
    size: Annotated[str, typer.Option("--size", metavar="WxH", help="Picture size of the grid.")] = "1920x1080",
    fps: Annotated[int, typer.Option("--fps", min=1, max=60, help="Frames per second, paced by the clock.")] = 30,
    bitrate: Annotated[str, typer.Option("--bitrate", metavar="RATE", help="Target bitrate (e.g. 4M, 2500k).")] = "4M",
    min_bitrate: Annotated[
        str | None,
        typer.Option("--min-bitrate", metavar="RATE", help="Floor for the dynamic bitrate (default: a quarter)."),
    ] = None,
    duration: Annotated[
        str | None, typer.Option("--duration", "-d", metavar="D", help="Stop after this long (e.g. 10s, 1h).")
    ] = None,
    encoder: Annotated[
        str | None,
        typer.Option("--encoder", metavar="NAME", help="An FFmpeg encoder (default: config's encoder, auto)."),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            metavar="PRESET",
            help="Pin libx264's preset (e.g. ultrafast); the ladder then only halves the frame rate.",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary when stopping.")] = False,
) -> None:
    """Compose cameras into one stream: 1, 2x1, 2x2 or 3x3 tiles with each camera's name and the time
    its frame was captured; an offline camera shows NO SIGNAL and the grid goes on at its frame rate.
    Encoded with the best encoder that opens (camctl probe --encoders), a keyframe every second; when
    encoding falls behind, a cheaper preset first, then half the frame rate, and back when calm; the
    bitrate lowered when a file target's disk would not hold it.

    Exit 0 when done; 2 for bad options; 5 when the output cannot be written.

    [dim]Examples: camctl grid -o grid.mp4 -d 10s;  camctl grid cam_1 cam_2 -o rtsp://127.0.0.1:8554/grid;
    camctl grid -o /var/www/hls/[/dim]
    """
    from camctl.commands.grid import GridOptions, run_grid

    cfg = _state(ctx).config
    selected = cfg.select(cameras)
    options = GridOptions.parse(output, size, fps, bitrate, min_bitrate, duration, encoder or cfg.encoder, preset)
    _events_logged("camctl.grid")
    progress = render.GridProgress(len(selected)) if sys.stderr.isatty() and not json_out else None
    try:
        result = run_grid(cfg, selected, options, progress)
    finally:
        if progress is not None:
            progress.close()
    if json_out and output != "-":  # stdout carries the video
        render.print_json(result.to_json())
    else:
        error_line(render.grid_line(result))


@app.command("run-all")
def run_all(ctx: typer.Context) -> None:
    """Run everything the config enables, one RTSP session per camera shared by all of it:
    recording into the rolling buffer (with retention), frames and status on NATS, JPEGs and
    status over HTTP. With no config file: four built-in demo cameras, no network needed.
    Runs until SIGTERM/SIGINT, which finish every open segment. SIGHUP re-reads the config: cameras
    added, removed or changed start or stop without touching the others.

    [dim]Examples: camctl run-all;  camctl --config /etc/camctl/camctl.yaml run-all[/dim]
    """
    from camctl.commands import run_all as command

    tune_malloc()
    state = _state(ctx)
    cfg = state.config
    _events_logged("camctl.ingest", "camctl.record", "camctl.runall", "camctl.bus")
    command.check_ports(cfg)
    problem = command.storage_warning(cfg)
    if problem:
        logging.getLogger("camctl.record").error("%s", problem)
    crowded = command.memory_problem(cfg)
    if crowded:
        logging.getLogger("camctl.runall").warning("%s", crowded)
    banner = render.run_all_banner(cfg, cfg.select(None))
    if state.log_json:
        logging.getLogger("camctl.ingest").info("%s", banner)  # every line on stderr stays JSON
    else:
        render.note(banner)
    command.run_all(cfg, state.config_path, state.log_json, state.debug, reload=state.load)


@app.command("worker", hidden=True)
def worker(
    ctx: typer.Context,
    camera: Annotated[str, typer.Argument(metavar="CAM")],
    socket: Annotated[Path, typer.Option("--socket", help="Unix socket for the supervisor's HTTP front.")],
    nats_url: Annotated[str, typer.Option("--nats-url", envvar="CAMCTL_WORKER_NATS_URL")],
    restarts: Annotated[int, typer.Option("--restarts", min=0)] = 0,
) -> None:
    """One camera's worker process under `camctl run-all` (internal)."""
    from camctl.commands.ingest import camera_worker

    tune_malloc()
    _events_logged("camctl.ingest", "camctl.record")
    camera_worker(_state(ctx).config, camera, socket, nats_url, restarts)
    exit_now()  # its camera's footage is closed and journalled: no interpreter teardown


@app.command("grid-worker", hidden=True)
def grid_worker(
    ctx: typer.Context,
    sockets: Annotated[Path, typer.Option("--sockets", help="Folder of the camera workers' unix sockets.")],
) -> None:
    """The config's grid under `camctl run-all`, fed by the camera workers (internal)."""
    from camctl.commands.grid import WorkerFeed, grid_options, run_grid
    from camctl.runall.grid_state import write_state

    cfg = _state(ctx).config
    if cfg.grid is None:
        raise UsageError("no grid: section in the config")
    cameras = [cfg.camera(cam) for cam in cfg.grid.cameras] if cfg.grid.cameras else cfg.select(None)
    _events_logged("camctl.grid")
    run_grid(
        cfg,
        cameras,
        grid_options(cfg.grid, cfg.encoder),
        progress=lambda stats: write_state(sockets, stats),  # the front's /status and /metrics read it
        feed=lambda layout: WorkerFeed(cameras, sockets, layout),
    )


@events_app.callback()
def events(
    ctx: typer.Context,
    cameras: Annotated[
        list[str] | None, typer.Option("--camera", metavar="CAM", help="Only this camera (id or slug); again for more.")
    ] = None,
    labels: Annotated[list[str] | None, typer.Option("--label", metavar="LABEL", help="Only this label.")] = None,
    zone: Annotated[str | None, typer.Option("--zone", metavar="ZONE", help="Only events that entered it.")] = None,
    severity: Annotated[str | None, typer.Option("--severity", metavar="S", help="alert or detection.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", metavar="T", help="Going on at or after: -1h, ISO 8601.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", metavar="T", help="Begun before: -10m, ISO 8601.")] = None,
    before: Annotated[str | None, typer.Option("--before", metavar="T", help="The page before this start.")] = None,
    unreviewed: Annotated[bool, typer.Option("--unreviewed", help="Only events nobody has reviewed.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many.")] = 50,
    json_out: JsonFlag = False,
) -> None:
    """What happened: the events kept beside the footage (each mark is one: camctl mark, NATS,
    POST /api/marks), newest first: camera, label, severity (alert or detection), zones, start,
    length, score, source, reviewed. `camctl events show ID` for one, `camctl events review` to mark
    them looked at.

    [dim]Examples: camctl events --since -1h;  camctl events --camera cam_2 --label person --zone driveway;
    camctl events --severity alert --unreviewed --json[/dim]
    """
    if ctx.invoked_subcommand is not None:
        return
    from camctl.commands.events import list_events
    from camctl.events.store import SEVERITIES, EventFilter

    cfg = _state(ctx).config
    if severity is not None and severity not in SEVERITIES:
        raise UsageError(f"--severity {severity!r}: one of {', '.join(SEVERITIES)}")
    low, high = _time_window(since, until)
    page = _time_window(before, None)[0]
    ids = [cfg.camera(c).id for c in cameras] if cameras else None
    wanted = EventFilter(cameras=ids, labels=labels or None, zone=zone, severity=severity, since=low, until=high,
                         reviewed=False if unreviewed else None, before=page, limit=limit)  # fmt: skip
    result = list_events(cfg.storage.root, wanted)
    render.show(result.to_json(), lambda: render.events_table(result.events, result.more) if result.events
                else "no events", json_out=json_out)  # fmt: skip


@events_app.command("show")
def events_show(
    ctx: typer.Context,
    event_id: Annotated[str, typer.Argument(metavar="ID", help="The event's id (camctl events lists them).")],
    json_out: JsonFlag = False,
) -> None:
    """One event: what, where, when, how long, how sure, its zones and boxes. Exit 2 for an unknown id.

    [dim]Example: camctl events show 1796000000.123456-a1b2c3 --json[/dim]
    """
    from camctl.commands.events import show_event

    event = show_event(_state(ctx).config.storage.root, event_id)
    render.show(event.to_json(), lambda: render.event_lines(event), json_out=json_out)


@events_app.command("review")
def events_review(
    ctx: typer.Context,
    event_ids: Annotated[list[str] | None, typer.Argument(metavar="ID", help="Events to mark reviewed.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every event.")] = False,
    undo: Annotated[bool, typer.Option("--undo", help="Mark them not reviewed again.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Mark events reviewed (looked at), or with --undo not any more. Exit 2 for an unknown id.

    [dim]Examples: camctl events review 1796000000.123456-a1b2c3;  camctl events review --all[/dim]
    """
    from camctl.commands.events import review_events

    if bool(event_ids) == every:
        raise UsageError("name the events to review, or say --all")
    changed = review_events(_state(ctx).config.storage.root, None if every else event_ids, reviewed=not undo)
    word = "not reviewed" if undo else "reviewed"
    render.show({"changed": changed, "reviewed": not undo}, lambda: f"{changed} event(s) marked {word}",
                json_out=json_out)  # fmt: skip


@config_app.command("check")
def config_check(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Validate the config; exit 2 with the file and key path of the first problem.

    [dim]Example: camctl --config /etc/camctl/camctl.yaml config check[/dim]
    """
    from camctl.commands.config import check_config

    check = check_config(_state(ctx).config)
    render.show(check.to_json(), lambda: render.config_check_line(check), json_out=json_out)
    if not json_out:
        for warning in check.warnings:
            error_line(f"warning: {warning}")


@config_app.command("show")
def config_show(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Print the effective config (defaults filled in, ${ENV} resolved, passwords masked)."""
    from camctl.commands.config import shown_config

    data = shown_config(_state(ctx).config)
    if json_out:
        render.print_json(data)
    else:
        render.show_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


@config_app.command("schema")
def config_schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write it to this file.")] = None,
) -> None:
    """Print a JSON Schema of camctl.yaml, for an editor's completion and checks as you type.

    [dim]Example: camctl config schema -o camctl.schema.json[/dim]
    """
    from camctl.config import config_schema as schema
    from camctl.storage.files import write_atomically

    text = json.dumps(schema(), indent=2) + "\n"
    if output is None:
        render.show_text(text)
    else:
        write_atomically(output, text.encode())


def main() -> None:
    app()
