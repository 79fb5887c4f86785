"""Test helpers for recordings: a `camctl record` child process, and frame identity at NAL level.

Frames are compared by the bytes of their coded slices: a reference client on the same shared
camera receives the very same slices, so a recording is gap-free exactly when its slices are one
contiguous run of the reference's.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import av

from camctl.config import parse_config
from camctl.media.source import open_source

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
        self.camera = parse_config(f"cameras:\n  ref: {url}\n").cameras["ref"]
        self.slices: list[str] = []
        self.frames = 0  # distinct timestamps seen
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


class Recorder:
    """`camctl record` as a child process, stopped by the test (SIGTERM, or SIGKILL on failure)."""

    def __init__(self, config: Path, data_dir: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "CAMCTL_CONFIG"}
        env["CAMCTL_DATA_DIR"] = str(data_dir)
        self.log = data_dir.parent / "record.log"
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "camctl", "--config", str(config), "record", *args],
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            env=env,
        )
        self.stdout = b""

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; returns (exit status, seconds it took to exit)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.stdout, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.kill()
        self._log_file.close()


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
