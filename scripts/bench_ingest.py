#!/usr/bin/env python3
"""Ingest cost: `camctl ingest` (decode + events + HTTP) vs 4 `ffmpeg -i URL -f null -` decoders.

Same fake cameras for both, one after the other (each alone on the CPU): CPU seconds over a steady
window (read from /proc after a warm-up) and peak RSS (wait4). While ingest still runs, after its
CPU window: warm snapshot latency (`GET /<cam>/frame.jpg` of a fresh frame, i.e. one JPEG encode,
and the `camctl snapshot` command end to end) and frame.jpg requests per second from 8 concurrent
clients (cache hits on the latest frame). Prints JSON with ratios.

    .venv/bin/python scripts/bench_ingest.py --seconds 30
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.bench_record import cpu_seconds
from tests.harness import FakeCameras, NatsServer, free_port
from tests.ingest_helpers import http_get, write_ingest_config


def measure(procs: list[subprocess.Popen[bytes]], warmup: float, seconds: float) -> float:
    """CPU seconds the processes used over `seconds`, after `warmup`."""
    time.sleep(warmup)
    start = sum(cpu_seconds(p.pid) for p in procs)
    time.sleep(seconds)
    return sum(cpu_seconds(p.pid) for p in procs) - start


def stop(procs: list[subprocess.Popen[bytes]], sig: int) -> float:
    """Stops them; returns the sum of their peak RSS in MiB."""
    total = 0.0
    for p in procs:
        p.send_signal(sig)
    for p in procs:
        _pid, _status, usage = os.wait4(p.pid, 0)
        p.returncode = 0
        total += usage.ru_maxrss / 1024
    return total


def ms_stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50_ms": round(statistics.median(ordered), 1), "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30, help="CPU window for each tool")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=int, default=30)
    args = parser.parse_args()
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise SystemExit("ffmpeg CLI not found (apt-get install ffmpeg)")
    names = [f"cam{i + 1}" for i in range(args.cameras)]
    report: dict[str, Any] = {
        "benchmark": f"ingest {args.cameras} cameras {args.size}@{args.fps} 2 Mbit/s, CPU over {args.seconds:g} s",
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        cams = stack.enter_context(FakeCameras(count=args.cameras, size=args.size, fps=args.fps, bitrate=2048,
                                               gop=args.fps))  # fmt: skip
        nats_server = stack.enter_context(NatsServer())
        port = free_port()
        urls = {f"cam_{n[3:]}": cams.url(n) for n in names}
        config = write_ingest_config(tmp / "camctl.yaml", urls, nats_server.url, port)
        env = {k: v for k, v in os.environ.items() if k != "CAMCTL_CONFIG"} | {"CAMCTL_DATA_DIR": str(tmp / "d")}

        ingest = subprocess.Popen([sys.executable, "-m", "camctl", "--config", str(config), "ingest"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)  # fmt: skip
        camctl_cpu = measure([ingest], 5.0, args.seconds)
        url = f"http://127.0.0.1:{port}/cam1/frame.jpg"
        fresh: list[float] = []
        for _ in range(40):  # a new frame each time (every 50 ms at 30 fps): one encode per request
            time.sleep(0.05)
            started = time.perf_counter()
            code, _headers, _body = http_get(url)
            if code == 200:
                fresh.append((time.perf_counter() - started) * 1000)
        command: list[float] = []
        startup: list[float] = []
        warm_answers = 0
        for _ in range(10):
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "camctl", "--config", str(config), "snapshot", "cam_1",
                                   "-o", str(tmp / "s.jpg")], check=True, capture_output=True, env=env)  # fmt: skip
            command.append((time.perf_counter() - started) * 1000)
            warm_answers += b"(warm)" in done.stderr
            started = time.perf_counter()  # the same interpreter start-up under the same load, for scale
            subprocess.run([sys.executable, "-m", "camctl", "--version"], check=True, capture_output=True, env=env)
            startup.append((time.perf_counter() - started) * 1000)
        requests = 0
        deadline = time.monotonic() + 5.0

        def client() -> int:
            n = 0
            while time.monotonic() < deadline:
                n += http_get(url)[0] == 200
            return n

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            requests = sum(pool.map(lambda _i: client(), range(8)))
        camctl_rss = stop([ingest], signal.SIGTERM)

        decoders = [
            subprocess.Popen([ffmpeg, "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp", "-i",
                              cams.url(n), "-f", "null", "-"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for n in names
        ]  # fmt: skip
        ffmpeg_cpu = measure(decoders, 5.0, args.seconds)
        ffmpeg_rss = stop(decoders, signal.SIGINT)

    report["camctl_ingest"] = {
        "cpu_s": round(camctl_cpu, 2),
        "cpu_percent_of_one_core": round(camctl_cpu / args.seconds * 100, 1),
        "peak_rss_mib": round(camctl_rss, 1),
    }
    report["ffmpeg_null_decoders"] = {"cpu_s": round(ffmpeg_cpu, 2),
                                      "cpu_percent_of_one_core": round(ffmpeg_cpu / args.seconds * 100, 1),
                                      "peak_rss_mib_sum": round(ffmpeg_rss, 1), "processes": len(names)}  # fmt: skip
    report["ratio_cpu"] = round(camctl_cpu / ffmpeg_cpu, 2)
    report["ratio_peak_rss"] = round(camctl_rss / ffmpeg_rss, 2)
    report["warm_frame_jpg_fresh_frame"] = ms_stats(fresh) | {"n": len(fresh)}
    report["warm_snapshot_command"] = ms_stats(command) | {"n": len(command), "warm_answers": warm_answers}
    report["camctl_version_command_same_load"] = ms_stats(startup) | {"n": len(startup)}
    report["frame_jpg_requests_per_s_8_clients"] = round(requests / 5.0, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
