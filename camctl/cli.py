"""The Typer app: parse, call one plain function, render, map errors to exit codes.

Exit codes: 0 ok, 1 unexpected, 2 usage/config, 3 camera unreachable/timeout,
4 authentication refused, 5 storage (not writable / full).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from camctl import __version__
from camctl.config import Config, effective_config, load_config
from camctl.errors import CamctlError, ExitStatus, StorageError, UsageError
from camctl.render import console, error_line, print_json
from camctl.secrets import redact


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
            ctx.exit(130)
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
        sys.stderr.write(redact("".join(traceback.format_exception(exc))))
    error_line(line)


@dataclass
class State:
    config_path: Path | None = None
    debug: bool = False
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config


app = typer.Typer(
    cls=CamctlGroup,
    name="camctl",
    help="Camera stream manager: probe cameras, take snapshots, prune recordings.\n\n"
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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"camctl {__version__}")
        raise typer.Exit()


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
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.obj = State(config_path=config, debug=debug)
    _setup_logging(debug)


def _setup_logging(debug: bool) -> None:
    class Redacting(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.msg, record.args = redact(record.getMessage()), None
            return True

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(Redacting())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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
) -> None:
    """Check cameras: reachable, credentials accepted, codec, resolution, and the fps, bitrate and
    keyframe interval measured over the stream (not just announced).

    Exit 0 when all are online, 3 when any is unreachable or timed out, 4 when any refused its credentials.

    [dim]Example: camctl probe cam_1 cam_2 --json[/dim]
    """
    from camctl.commands.probe import probe_cameras, probe_exit_status
    from camctl.render import probe_table

    selected = _state(ctx).config.select(cameras)
    err = console(stderr=True)
    if err.is_terminal and not json_out:
        with err.status(f"probing {len(selected)} camera(s)…"):
            results = probe_cameras(selected, timeout, seconds)
    else:
        results = probe_cameras(selected, timeout, seconds)
    if json_out:
        print_json([r.to_json() for r in results])
    else:
        console().print(probe_table(results))
        # The table may wrap a reason; each failure also gets one whole line, as errors do.
        for r in results:
            if not r.online:
                error_line(f"{r.camera_id}: {r.error} ({r.url})")
    raise typer.Exit(probe_exit_status(results))


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
) -> None:
    """Save a JPEG of what the camera sees now.

    [dim]Examples: camctl snapshot cam_1 > cam1.jpg;  camctl snapshot cam_2 -o door.jpg --width 640[/dim]
    """
    from camctl.commands.snapshot import cold_snapshot

    if output is not None and str(output) == "-":
        output = None
    if output is None and sys.stdout.isatty():
        raise UsageError(
            f"not writing a JPEG to the terminal: redirect it (camctl snapshot {camera} > {camera}.jpg) or use -o FILE"
        )
    cam = _state(ctx).config.camera(camera)
    shot = cold_snapshot(cam, quality, width, timeout)
    if output is None:
        sys.stdout.buffer.write(shot.jpeg)
        sys.stdout.buffer.flush()
        return
    _write_atomically(output, shot.jpeg)
    console(stderr=True).print(f"{cam.id}: {shot.width}x{shot.height} JPEG, {len(shot.jpeg) / 1000:.0f} KB -> {output}")


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None


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
) -> None:
    """Delete the oldest whole segments until the retention limits hold (age, total size, free space).

    Safe beside a running recorder: the newest segment of each camera is never touched. Idempotent,
    for a systemd timer or cron.

    [dim]Examples: camctl prune --dry-run;  camctl prune --max-age 12h --json[/dim]
    """
    import time

    from camctl.commands.prune import limits_from, prune_report

    cfg = _state(ctx).config
    limits = limits_from(cfg.storage.retention, max_age, max_bytes, min_free)
    report = prune_report(cfg.storage.root, limits, time.time(), dry_run)
    if json_out:
        print_json(report)
        return
    verb = "would delete" if dry_run else "deleted"
    out = console()
    for item in report["deleted"]:
        out.print(f"{verb} {item['path']} ({item['reason']})")
    out.print(
        f"{verb} {len(report['deleted'])} segment(s), {report['freed_human']}; "
        f"{report['kept']} kept in {cfg.storage.root}"
    )


@config_app.command("check")
def config_check(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Validate the config; exit 2 with the file and key path of the first problem.

    [dim]Example: camctl --config /etc/camctl/camctl.yaml config check[/dim]
    """
    cfg = _state(ctx).config
    if json_out:
        print_json({"ok": True, "source": cfg.source, "cameras": list(cfg.cameras)})
    else:
        console().print(f"{cfg.source}: OK, {len(cfg.cameras)} camera(s): {', '.join(cfg.cameras)}")


@config_app.command("show")
def config_show(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Print the effective config (defaults filled in, ${ENV} resolved, passwords masked)."""
    data = effective_config(_state(ctx).config)
    if json_out:
        print_json(data)
        return
    import yaml

    sys.stdout.write(yaml.safe_dump(redact.data(data), sort_keys=False, allow_unicode=True))


def main() -> None:
    app()
