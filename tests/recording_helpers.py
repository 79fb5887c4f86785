"""Test helpers for recordings: a `camctl record` child process, and frame identity at NAL level.

Frames are compared by the bytes of their coded slices: a reference client on the same shared
camera receives the very same slices, so a recording is gap-free exactly when its slices are one
contiguous run of the reference's.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import av

from camctl.config import parse_config, stream_view
from camctl.media.connect import open_source
from tests.harness import CamctlProcess

_START_CODE = re.compile(b"\x00\x00\x01")
H264_SLICES = (1, 5)


def annexb_nal_units(data: bytes) -> list[bytes]:
    parts = _START_CODE.split(data)
    return [p.rstrip(b"\x00") for p in parts[1:] if p.rstrip(b"\x00")]


def length_prefixed_nal_units(data: bytes) -> list[bytes]:
    units, pos = [], 0
    while pos + 4 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        units.append(data[pos + 4 : pos + 4 + size].rstrip(b"\x00"))
        pos += 4 + size
    return units


def slice_ids(units: list[bytes]) -> list[str]:
    """H.264 coded slices (non-IDR and IDR) as short hashes: one per frame for these cameras."""
    return [hashlib.blake2b(u, digest_size=8).hexdigest() for u in units if u and (u[0] & 0x1F) in H264_SLICES]


def slices_of(frames: list[tuple[float, bool, str]]) -> list[str]:
    return [h for _t, _k, joined in frames for h in joined.split("+") if h]


def contiguous_in(run: list[str], sequence: list[str]) -> bool:
    """Whether run occurs in sequence as one unbroken stretch (frames may repeat: a static
    picture can encode to identical slices, so every candidate start is tried)."""
    n = len(run)
    return bool(run) and any(sequence[i : i + n] == run for i, h in enumerate(sequence) if h == run[0])


def longest_match(run: list[str], sequence: list[str]) -> int:
    """How many frames of run match from its start, at the best place in sequence (diagnostics)."""
    best = 0
    for i, h in enumerate(sequence):
        if h != run[0]:
            continue
        n = 0
        while n < len(run) and i + n < len(sequence) and sequence[i + n] == run[n]:
            n += 1
        best = max(best, n)
    return best


def segment_frames(path: Path) -> list[tuple[float, bool, str]]:
    """(seconds from segment start, keyframe, slice hashes joined by +) per sample of a recorded
    segment (x264 in zero-latency mode codes a frame as several slices); reading stops quietly at a
    torn end."""
    frames: list[tuple[float, bool, str]] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        try:
            for packet in container.demux(stream):
                if packet.dts is None or tb is None:
                    continue
                ids = slice_ids(length_prefixed_nal_units(bytes(packet)))
                frames.append((float(packet.dts * tb), packet.is_keyframe, "+".join(ids)))
        except av.error.FFmpegError:
            pass
    return frames


class ReferenceClient:
    """Reads a camera in a thread and keeps the slice hash of every frame it receives."""

    def __init__(self, url: str) -> None:
        self.camera = stream_view(parse_config(f"cameras:\n  ref: {url}\n").cameras["ref"], "main")
        self.slices: list[str] = []
        self.frames = 0  # distinct timestamps seen
        self.arrivals: list[float] = []  # wall-clock arrival of each of those frames
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with open_source(self.camera, timeout=10) as source:
            last_pts = None
            for packet in source.packets():
                self._ready.set()
                if packet.pts is not None and packet.pts != last_pts:
                    self.frames, last_pts = self.frames + 1, packet.pts
                    self.arrivals.append(time.time())
                self.slices += slice_ids(annexb_nal_units(bytes(packet)))
                if self._stop.is_set():
                    return

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(15), "reference client got no video"
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(10)


def Recorder(config: Path, data_dir: Path, *args: str) -> CamctlProcess:  # noqa: N802 - reads as a class
    """`camctl record` as a child process."""
    return CamctlProcess(config, data_dir, "record", *args)


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Polls check() until it returns something truthy; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def segment_files(root: Path, camera_id: str) -> list[Path]:
    return sorted((root / camera_id).rglob(f"{camera_id}_*.mp4"))
