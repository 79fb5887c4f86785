#!/usr/bin/env python3
"""Footage over HTTP, measured against a real `camctl ingest` serving a generated recordings tree.

- listing: `GET /api/recordings/<cam>` over 1 day x 4 cameras (60 s segments) and 7 days x 4
  cameras (10 s segments, 60,480 per camera), beside a mediamtx-style scan (walk the folders and
  open every file, reading its box headers, as a playback server without an index does on every
  call) and camctl's own `recordings` index (walk + whole journal, rebuilt per call: the CLI's path);
- a 10-minute range: time to first byte and to first decoded picture of `recording.mp4`, cold
  (cut on demand) and warm (cut cached), beside the ffmpeg CLI exporting the same range (concat,
  stream copy, fast start: what an operator did over SSH before);
- 4 concurrent playbacks (four different 10-minute ranges): camctl's CPU per playback.

The tree is real segments, written once by camctl's own SegmentWriter from video encoded once
(10 s at the chosen size), then hard-linked under every segment name, each with its journal line:
no encoding while measuring.

    .venv/bin/python scripts/bench_footage.py            # prints a Markdown table
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av
import numpy as np

from camctl.media.access_units import AccessUnit
from camctl.recording.index import build_index
from camctl.recording.journal import JOURNAL_NAME
from camctl.recording.repair import playable_end
from camctl.recording.segment_writer import SegmentWriter
from camctl.storage.layout import segment_path
from tests.harness import CamctlProcess, free_port

CAMERAS = 4
DAY = 86400
Row = tuple[str, str, str, str]
LINKS_PER_COPY = 60000  # ext4 allows 65,000 links to a file


def encoded_frames(size: str, fps: int, seconds: int) -> list[AccessUnit]:
    width, height = (int(v) for v in size.split("x"))
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = Fraction(1, fps)
    codec.bit_rate = 2_000_000
    codec.options = {"preset": "ultrafast", "g": str(fps), "bframes": "0"}
    units = []
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    for n in range(fps * seconds):
        picture = np.roll(base, n * 4, axis=1)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        frame.pts = n
        units += [AccessUnit(bytes(p), n, n, Fraction(1, fps), p.is_keyframe) for p in codec.encode(frame)]
    units += [AccessUnit(bytes(p), 0, 0, Fraction(1, fps), p.is_keyframe) for p in codec.encode(None)]
    return units


def template_segment(folder: Path, units: list[AccessUnit], fps: int, size: str) -> tuple[Path, int, float]:
    """One real segment (10 s, fragmented MP4 as camctl writes them): (path, frames, seconds)."""
    width, height = (int(v) for v in size.split("x"))
    writer = SegmentWriter(folder, "template", "h264", width, height, 0.0, None)
    for n, unit in enumerate(units):
        writer.write(unit, n / fps, n / fps, 1 / fps)
    info = writer.close()
    return info.path, info.frames, info.end - info.start


def build_tree(root: Path, template: Path, frames: int, seconds: float, days: float, segment: float) -> int:
    """Hard links of the template under every segment name of `days` for CAMERAS cameras, each with
    its journal line; the segment is `segment` seconds long in the journal (the template's frames
    are the same). Returns how many files."""
    end = time.time() // segment * segment
    start = end - days * DAY
    size = template.stat().st_size
    count = 0
    source = template
    for cam in range(1, CAMERAS + 1):
        camera_id = f"cam_{cam}"
        lines = []
        t = start
        while t < end:
            path = segment_path(root, camera_id, datetime.fromtimestamp(t, UTC))
            path.parent.mkdir(parents=True, exist_ok=True)
            if count % LINKS_PER_COPY == 0:  # a file system allows so many links to one file
                source = template.with_name(f"copy-{count}.mp4")
                shutil.copyfile(template, source)
            os.link(source, path)
            entry = {"type": "segment", "file": str(path.relative_to(root / camera_id)), "start": t,
                     "end": t + segment, "frames": frames, "bytes": size, "codec": "h264"}  # fmt: skip
            lines.append(json.dumps(entry, separators=(",", ":")))
            t += segment
            count += 1
        (root / camera_id / JOURNAL_NAME).write_text("\n".join(lines) + "\n")
    return count


def mediamtx_style_list(root: Path, camera_id: str, limit: int | None = None) -> int:
    """Walk the camera's folders and open every file, reading its boxes' headers (what a playback
    server that keeps no index does on every call to learn each file's span; generous to it: no
    sample tables are parsed). Returns how many files were opened."""
    opened = 0
    for folder, _dirs, files in os.walk(root / camera_id):
        for name in sorted(files):
            if name.endswith(".mp4") and (limit is None or opened < limit):
                playable_end(Path(folder) / name)
                opened += 1
    return opened


def timed(call: Any, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return times


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 - loopback
        return bytes(response.read())


def first_byte_and_picture(url: str) -> tuple[float, float]:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 - loopback
        head = response.read(1)
        first_byte = time.perf_counter() - began

        class Joined:  # what PyAV reads: the byte already read, then the rest of the response
            def __init__(self) -> None:
                self.pending = head

            def read(self, n: int = -1) -> bytes:
                if self.pending:
                    out, self.pending = self.pending, b""
                    return out
                return bytes(response.read(n if n > 0 else 65536))

        with av.open(Joined(), "r", format="mp4") as container:
            next(container.decode(video=0))
        return first_byte * 1000, (time.perf_counter() - began) * 1000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def serve(config: Path, data: Path, port: int) -> CamctlProcess:
    proc = CamctlProcess(config, data, "ingest")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            get(f"http://127.0.0.1:{port}/healthz")
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"camctl ingest did not answer: {proc.stderr[-2000:]}")


def scan_ms(root: Path, per_camera: int, limit: int) -> tuple[float, str]:
    """The mediamtx-style scan of every camera (one camera measured, times CAMERAS; beyond
    `limit` files, extrapolated from the first `limit`)."""
    began = time.perf_counter()
    opened = mediamtx_style_list(root, "cam_1", limit)
    ms = (time.perf_counter() - began) * 1000 * per_camera / opened * CAMERAS
    return ms, "" if opened == per_camera else f" (extrapolated from {opened} files)"


def listing_row(base: str, root: Path, label: str, days: float, files: int, repeat: int, limit: int) -> Row:
    window = f"start={iso(time.time() - days * DAY)}&end={iso(time.time())}"
    cold = timed(lambda: get(f"{base}/api/recordings/cam1?{window}"), 1)[0]
    for cam in range(2, CAMERAS + 1):
        get(f"{base}/api/recordings/cam{cam}?{window}")  # each camera's index loaded once
    warm = statistics.median(
        timed(lambda: [get(f"{base}/api/recordings/cam{c}?{window}") for c in range(1, CAMERAS + 1)], repeat)
    )
    scan, how = scan_ms(root, files // CAMERAS, limit)
    rebuilt = timed(lambda: build_index(root), 1)[0]
    return (
        f"list {label} (all 4 cameras)",
        f"{warm:.0f} ms (first call: {cold:.0f} ms, one camera)",
        f"mediamtx-style scan {scan:.0f} ms{how}",
        f"{scan / warm:.0f}x faster; camctl recordings (rebuilt per call): {rebuilt:.0f} ms",
    )


def range_rows(base: str, root: Path, pid: int, work: Path) -> list[Row]:
    """A 10-minute range cold and cached, ffmpeg exporting it beside; then 4 concurrent playbacks."""
    start = time.time() - 3 * 3600
    url = f"{base}/cam1/recording.mp4?start={iso(start)}&duration=600"
    stream_byte, stream_picture = first_byte_and_picture(url.replace("start=", "format=fmp4&start=", 1))
    cold_byte, cold_picture = first_byte_and_picture(url)
    warm_byte, warm_picture = first_byte_and_picture(url)
    index = build_index(root, ["cam_1"])["cam_1"].window(start, start + 600)
    listing = work / "concat.txt"
    listing.write_text("".join(f"file '{s.path}'\n" for s in index.segments))
    began = time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                    "-movflags", "+faststart", str(work / "ffmpeg.mp4")], check=True)  # fmt: skip
    ffmpeg_ms = (time.perf_counter() - began) * 1000
    size_mb = len(get(url)) / 1e6
    urls = [f"{base}/cam{c}/recording.mp4?start={iso(start - c * 900)}&duration=600" for c in range(1, CAMERAS + 1)]
    cpu_before = cpu_seconds(pid)
    began = time.perf_counter()
    threads = [threading.Thread(target=get, args=(u,)) for u in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    cpu = cpu_seconds(pid) - cpu_before
    return [
        ("10-minute range: first byte", f"{cold_byte:.0f} ms (cut on demand), {warm_byte:.0f} ms (cut cached)",
         f"ffmpeg CLI export of the range {ffmpeg_ms:.0f} ms", f"{size_mb:.0f} MB by stream copy, fast start"),
        ("10-minute range: first picture", f"{cold_picture:.0f} ms, {warm_picture:.0f} ms (cached)", "", ""),
        ("10-minute range, format=fmp4 (streamed as read)", f"first byte {stream_byte:.0f} ms, first picture "
         f"{stream_picture:.0f} ms", "", "the client left after its first picture: camctl stops reading"),
        ("4 concurrent 10-minute playbacks", f"{cpu / 4:.2f} CPU s per playback", f"all four served in {wall:.1f}s",
         "cut + served whole; no re-encoding"),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1920x1080", help="picture size of the generated footage")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--scan-limit", type=int, default=20000,
                        help="files the mediamtx-style scan opens at most (beyond: extrapolated)")  # fmt: skip
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="camctl-bench-footage-"))
    rows: list[Row] = []
    try:
        fps = 15
        units = encoded_frames(args.size, fps, 10)
        template, frames, seconds = template_segment(work / "template", units, fps, args.size)
        print(f"template: {template.stat().st_size / 1e6:.1f} MB, {frames} frames, {seconds:.1f}s", file=sys.stderr)
        for label, days, segment in (("1 day, 60 s segments", 1, 60.0), ("7 days, 10 s segments", 7, 10.0)):
            root = work / f"tree-{days}"
            began = time.perf_counter()
            files = build_tree(root, template, frames, seconds, days, segment)
            print(f"{label}: {files} files in {time.perf_counter() - began:.1f}s", file=sys.stderr)
            port = free_port()
            config = work / f"camctl-{days}.yaml"
            cams = "".join(f"  cam_{i}: {{url: 'demo:', enabled: false}}\n" for i in range(1, CAMERAS + 1))
            config.write_text(f"cameras:\n{cams}storage: {{root: '{root}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\n")
            with serve(config, work / f"data-{days}", port) as proc:
                base = f"http://127.0.0.1:{port}"
                try:
                    rows.append(listing_row(base, root, label, days, files, args.repeat, args.scan_limit))
                    if days == 1:
                        rows += range_rows(base, root, proc.proc.pid, work)
                except OSError:
                    print(f"camctl said: {proc.stderr[-3000:]}", file=sys.stderr)
                    raise
                proc.terminate()
            shutil.rmtree(root)
        print("| measure | camctl | beside it | note |")
        print("| --- | --- | --- | --- |")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
