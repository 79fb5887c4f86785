"""`camctl grid`: cameras composed into one stream (1, 2x1, 2x2 or 3x3 tiles), encoded in real time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import av.error

from camctl.config import CameraConfig, Config, GridConfig, stream_view
from camctl.encoding.bitrate import BitrateController, StorageBudget
from camctl.encoding.compositor import Compositor
from camctl.encoding.encoder import KeyframeEncoder
from camctl.encoding.grid import Grid, GridStats, TileSource
from camctl.encoding.ladder import EncoderLadder
from camctl.encoding.output import StreamOutput
from camctl.encoding.tiles import WorkerTiles
from camctl.errors import CamctlError, UsageError
from camctl.lifecycle import StoppableThread, stop_on_signals
from camctl.media.encoders import best_encoder
from camctl.media.live import LiveCamera
from camctl.media.session import CameraSession
from camctl.rules.encoders import X264_PRESETS
from camctl.rules.layout import Layout, parse_size
from camctl.rules.target import Target
from camctl.runall.children import worker_socket
from camctl.units import parse_bitrate, parse_duration

log = logging.getLogger("camctl.grid")

STOP_GRACE = 3.0


@dataclass(frozen=True)
class GridOptions:
    target: Target
    width: int = 1920
    height: int = 1080
    fps: int = 30
    bitrate: int = 4_000_000
    min_bitrate: int | None = None
    duration: float | None = None
    encoder: str = "auto"
    keyframe_seconds: float = 1.0
    preset: str | None = None  # libx264's preset, pinned: the ladder then only halves the frame rate

    @classmethod
    def parse(
        cls,
        output: str,
        size: str,
        fps: int,
        bitrate: str,
        min_bitrate: str | None,
        duration: str | None,
        encoder: str,
        preset: str | None = None,
    ) -> GridOptions:
        """From the command line's words; a bad one is a usage error (exit 2)."""
        width, height = parse_size(size)
        if preset is not None and preset not in X264_PRESETS:
            raise UsageError(f"--preset {preset!r}: one of {', '.join(X264_PRESETS)}")
        try:
            return cls(
                Target.parse(output), width, height, fps, parse_bitrate(bitrate),
                parse_bitrate(min_bitrate) if min_bitrate is not None else None,
                parse_duration(duration) if duration is not None else None, encoder, preset=preset,
            )  # fmt: skip
        except ValueError as exc:
            raise UsageError(str(exc)) from None


class Feed(Protocol):
    """Where the tiles come from, started and stopped around the grid."""

    @property
    def sources(self) -> Sequence[TileSource]: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class ThreadedFeed:
    """A feed whose tiles come from one thread per camera, stopped together."""

    threads: Sequence[StoppableThread]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        for thread in self.threads:
            thread.stop()
        for thread in self.threads:
            thread.join(STOP_GRACE)


class OwnSessions(ThreadedFeed):
    """`camctl grid` on its own: an RTSP session and a decoder per camera."""

    def __init__(self, config: Config, cameras: list[CameraConfig]) -> None:
        views = [stream_view(cam, cam.roles.grid) for cam in cameras]  # the sub stream where there is one
        self.sources = [
            LiveCamera(view, hardware_decode=config.ingest.hardware_decode, analysed=False) for view in views
        ]
        for source in self.sources:
            source.users += 1  # the grid composes every picture
        self.threads = [
            CameraSession(view, [tile], read_timeout=config.ingest.stall_seconds)
            for view, tile in zip(views, self.sources, strict=True)
        ]


class WorkerFeed(ThreadedFeed):
    """The grid under `run-all`: each camera's tiles streamed by its worker (its one RTSP session)."""

    def __init__(self, cameras: list[CameraConfig], sockets: Path, layout: Layout) -> None:
        tile = layout.tile(0)
        self.sources = [WorkerTiles(cam.id, worker_socket(sockets, cam.id), tile.width, tile.height) for cam in cameras]
        self.threads = self.sources


@dataclass(frozen=True)
class GridResult:
    output: str
    size: str
    cameras: int
    encoder: str
    frames: int
    skipped: int
    seconds: float
    fps: float
    kbps: float
    bitrate_kbps: int
    bitrate_changes: int
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    preset: str | None  # the encoder ladder's rung at the end
    encoded_fps: float  # the grid's frame rate at the end (halved by the ladder when it had to)
    ladder: list[dict[str, object]]  # every step: at (s), from, to, reason

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_grid(
    config: Config,
    cameras: list[CameraConfig],
    options: GridOptions,
    progress: Callable[[GridStats], None] | None = None,
    feed: Callable[[Layout], Feed] | None = None,
) -> GridResult:
    """Makes the grid until SIGTERM/SIGINT or options.duration; returns the summary.

    progress: called about once a second with the running figures.
    feed: the tiles' source for a layout; by default the grid's own camera sessions."""
    layout = Layout.for_cameras(len(cameras), options.width, options.height)
    name = best_encoder(options.encoder)
    gop = max(1, round(options.fps * options.keyframe_seconds))
    try:
        if options.preset is not None and name != "libx264":
            raise UsageError(f"--preset is libx264's; the grid encodes with {name}")
        encoder = KeyframeEncoder(name, options.width, options.height, options.fps, options.bitrate, gop,
                                  preset=options.preset)  # fmt: skip
    except (av.error.FFmpegError, ValueError) as exc:
        raise CamctlError(f"encoder {name} does not open at {options.width}x{options.height}: {exc}") from None
    output = StreamOutput(options.target, "h264" if "hevc" not in name else "hevc", layout.width, layout.height,
                          options.fps)  # fmt: skip
    controller = BitrateController(options.bitrate, options.min_bitrate, options.bitrate, _budget(config, options))
    tiles = feed(layout) if feed is not None else OwnSessions(config, cameras)
    ladder = EncoderLadder(name, options.fps, pinned=options.preset)
    compositor = Compositor(layout, [cam.name or cam.id for cam in cameras])
    grid = Grid(tiles.sources, compositor, encoder, output, controller, ladder)
    log.info("grid %dx%d at %d fps, %s at %d kbps, into %s", layout.width, layout.height, options.fps, name,
             options.bitrate // 1000, output.target.shown)  # fmt: skip
    stop = threading.Event()
    with stop_on_signals(stop):
        tiles.start()
        try:
            stats = grid.run(stop, options.duration, progress)
        finally:
            tiles.stop()
    return summary(stats, output.target.shown, options, name, controller, len(cameras), grid.ladder)


def grid_options(grid: GridConfig, encoder: str) -> GridOptions:
    """run-all's grid, from the config's `grid:` section."""
    return GridOptions(Target.parse(grid.output), grid.width, grid.height, grid.fps, grid.bitrate, grid.min_bitrate,
                       None, encoder, preset=grid.preset)  # fmt: skip


def _budget(config: Config, options: GridOptions) -> StorageBudget | None:
    """A grid written to a file must leave room: the bitrate that fits its time on the disk."""
    if options.target.format not in ("mp4", "matroska"):
        return None
    keep = options.duration or config.storage.retention.max_age
    if not keep:
        return None
    folder = Path(options.target.url).parent
    return StorageBudget(folder, keep, 1, config.storage.retention.min_free or 0)


def summary(
    stats: GridStats,
    shown: str,
    options: GridOptions,
    encoder: str,
    controller: BitrateController,
    cameras: int,
    ladder: EncoderLadder,
) -> GridResult:
    seconds = time.monotonic() - stats.started
    return GridResult(
        output=shown,
        size=f"{options.width}x{options.height}",
        cameras=cameras,
        encoder=encoder,
        frames=stats.frames,
        skipped=stats.skipped,
        seconds=round(seconds, 3),
        fps=round(stats.frames / seconds, 2) if seconds > 0 else 0.0,
        kbps=round(stats.bytes * 8 / seconds / 1000, 1) if seconds > 0 else 0.0,
        bitrate_kbps=controller.bitrate // 1000,
        bitrate_changes=controller.changes,
        latency_ms_p50=stats.latency_ms(0.5),
        latency_ms_p95=stats.latency_ms(0.95),
        preset=ladder.rung.preset,
        encoded_fps=ladder.encoded_fps,
        ladder=[step.to_json() for step in ladder.steps],
    )
