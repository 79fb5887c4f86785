#!/usr/bin/env python3
"""Glass-to-event latency: `camctl ingest` NATS frame events vs a plain ffmpeg rawvideo reader.

Fake cameras run with --stamp: each frame carries, in its bottom rows, its number and the wall-clock
time it was taken (before encoding). A NATS subscriber takes every frame event; for a sample of them
it fetches the event's `url` and, when the JPEG is that very frame (X-Frame-Number), reads the stamp:
latency = event received - frame taken. In the same run, one `ffmpeg -rtsp_transport tcp -i URL
-f rawvideo -pix_fmt gray -` per camera is read frame by frame: latency = frame read - frame taken.
Prints JSON: p50/p95/max for both, events per second, frames per second read by ffmpeg.

    .venv/bin/python scripts/bench_latency.py --seconds 60 --cameras 4 --size 1920x1080 --fps 30
"""

from __future__ import annotations

import argparse
import io
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av

from tests.harness import FakeCameras, NatsServer, free_port, read_stamp
from tests.ingest_helpers import EventTap, http_get, write_ingest_config


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
        "max_ms": round(ordered[-1], 1),
    }


def plausible(latency_ms: float) -> bool:
    return 0 <= latency_ms < 10_000  # a stamp misread (a damaged first picture) is not a latency


def ffmpeg_reader(ffmpeg: str, url: str, width: int, height: int, out: list[float], stop: threading.Event) -> None:
    proc = subprocess.Popen(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url,
         "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    size = width * height
    try:
        while not stop.is_set():
            frame = proc.stdout.read(size)
            if len(frame) < size:
                break
            _number, taken = read_stamp(frame, width, height)
            latency = (time.time() - taken) * 1000
            if plausible(latency):
                out.append(latency)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--bitrate", type=int, default=2048)
    parser.add_argument("--samples-per-second", type=float, default=2.0, help="url fetches per camera per second")
    parser.add_argument("--no-ffmpeg", action="store_true", help="measure camctl alone")
    args = parser.parse_args()
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg and not args.no_ffmpeg:
        raise SystemExit("ffmpeg CLI not found (apt-get install ffmpeg)")
    width, height = (int(v) for v in args.size.split("x"))
    names = [f"cam{i + 1}" for i in range(args.cameras)]
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        cams = stack.enter_context(FakeCameras(count=args.cameras, size=args.size, fps=args.fps,
                                               bitrate=args.bitrate, gop=args.fps, stamp=True))  # fmt: skip
        nats_server = stack.enter_context(NatsServer())
        port = free_port()
        urls = {f"cam_{n[3:]}": cams.url(n) for n in names}
        config = write_ingest_config(tmp / "camctl.yaml", urls, nats_server.url, port)
        env = {k: v for k, v in os.environ.items() if k != "CAMCTL_CONFIG"} | {"CAMCTL_DATA_DIR": str(tmp / "d")}
        ingest = subprocess.Popen([sys.executable, "-m", "camctl", "--config", str(config), "ingest"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)  # fmt: skip
        stack.callback(lambda: (ingest.poll() is None and ingest.kill(), ingest.wait(10)))
        tap = stack.enter_context(EventTap(nats_server.url, ["seguranca.camera.frame"]))
        tap.wait("the first event", lambda e: True, 30)
        stop = threading.Event()
        ffmpeg_latency: dict[str, list[float]] = {n: [] for n in names}
        readers = []
        if not args.no_ffmpeg:
            assert ffmpeg is not None
            for n in names:
                t = threading.Thread(target=ffmpeg_reader, args=(ffmpeg, cams.url(n), width, height,
                                                                 ffmpeg_latency[n], stop), daemon=True)  # fmt: skip
                t.start()
                readers.append(t)
        camctl_latency: list[float] = []
        events = fetched = same_frame = 0
        next_fetch: dict[str, float] = {}
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            try:
                _subject, event, received = tap.events.get(timeout=1.0)
            except queue.Empty:  # keep waiting until the time is up
                continue
            events += 1
            cam = event["camera_id"]
            if time.monotonic() < next_fetch.get(cam, 0.0):
                continue
            next_fetch[cam] = time.monotonic() + 1 / args.samples_per_second
            code, headers, body = http_get(event["url"])
            fetched += 1
            if code != 200 or int(headers.get("X-Frame-Number", -1)) != event["frame_number"]:
                continue  # a newer frame had already replaced it: this sample says nothing
            same_frame += 1
            with av.open(io.BytesIO(body), format="mjpeg") as jpeg:
                picture = next(jpeg.decode(video=0))
            plane = picture.planes[0]
            _number, taken = read_stamp(bytes(plane), picture.width, picture.height, plane.line_size)
            latency = (received - taken) * 1000
            if plausible(latency):
                camctl_latency.append(latency)
        elapsed = time.monotonic() - started
        stop.set()
        for t in readers:
            t.join(10)
        ingest.send_signal(signal.SIGTERM)
        ingest.wait(10)
    report: dict[str, Any] = {
        "benchmark": f"glass-to-event latency, {args.cameras} stamped cameras {args.size}@{args.fps} "
        f"{args.bitrate} kbit/s, {args.seconds:g} s",
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "camctl": percentiles(camctl_latency)
        | {
            "events_per_s": round(events / elapsed, 1),
            "url_fetches": fetched,
            "fetches_of_the_event_frame": same_frame,
        },
    }
    if not args.no_ffmpeg:
        all_ff = [v for values in ffmpeg_latency.values() for v in values]
        report["ffmpeg_rawvideo"] = percentiles(all_ff) | {"frames_per_s": round(len(all_ff) / elapsed, 1)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
