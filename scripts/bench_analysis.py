#!/usr/bin/env python3
"""Frames for analysis on the same box: shared memory vs JPEG over HTTP, one run.

`camctl run-all` on four fake cameras (default 1920x1080 @ 30, replayed loops: the load generator
stays cheap), then three phases of --seconds each, one after the other:
1. no consumer: camctl's own CPU (the baseline);
2. four consumers (one per camera, each its own process) with `camctl.client.Frames(cam)` reading
   from the shared-memory ring every frame event (the cameras' `analysis_fps: 10`);
3. the same four with `shared_memory=False`: the JPEG behind each event's url, decoded to RGB.
For 2 and 3: camctl's CPU over the baseline plus the consumers' CPU, per frame analysed; and the
event-to-array latency (from the frame event reaching the consumer to its array being ready).
Prints JSON with the ratio.

    .venv/bin/python scripts/bench_analysis.py --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import CamctlProcess, FakeCameras, NatsServer, free_port
from tests.ingest_helpers import http_get, write_ingest_config

CONSUMER = """
import json, resource, sys, time
from camctl.client import Frames
camera, nats_url, seconds, shm = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"
latencies, sources, skipped, n = [], {}, 0, 0
with Frames(camera, nats_url=nats_url, shared_memory=shm) as frames:  # every event: analysis_fps 10
    first = next(iter(frames))  # attached: the ring is written from here on
    start = resource.getrusage(resource.RUSAGE_SELF)
    end = time.monotonic() + seconds
    for frame in frames:
        latencies.append((time.time() - frame.received) * 1000)
        sources[frame.source] = sources.get(frame.source, 0) + 1
        skipped += frame.skipped
        n += 1
        if time.monotonic() >= end:
            break
    usage = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage.ru_utime + usage.ru_stime - start.ru_utime - start.ru_stime
print(json.dumps({"frames": n, "cpu_s": cpu, "latencies_ms": latencies, "sources": sources, "skipped": skipped,
                  "shape": list(first.array.shape), "format": first.format}))
"""


def tree_cpu(root: int) -> float:
    """CPU seconds of a process and its descendants so far."""
    total, stack = 0.0, [root]
    tick = os.sysconf("SC_CLK_TCK")
    while stack:
        pid = stack.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{pid}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total


def consumers(cameras: list[str], nats_url: str, seconds: float, shm: bool, camctl_pid: int) -> dict[str, Any]:
    procs = [subprocess.Popen([sys.executable, "-c", CONSUMER, cam, nats_url, str(seconds), "1" if shm else "0"],
                              stdout=subprocess.PIPE, text=True) for cam in cameras]  # fmt: skip
    time.sleep(3)  # attached, first frames read
    before, started = tree_cpu(camctl_pid), time.monotonic()
    results = [json.loads(p.communicate(timeout=seconds + 60)[0]) for p in procs]
    camctl_cpu = tree_cpu(camctl_pid) - before
    wall = time.monotonic() - started
    latencies = sorted(x for r in results for x in r["latencies_ms"])
    frames = sum(r["frames"] for r in results)
    sources: dict[str, int] = {}
    for r in results:
        for k, v in r["sources"].items():
            sources[k] = sources.get(k, 0) + v
    return {
        "frames_analysed": frames,
        "analysed_fps_per_camera": round(frames / len(cameras) / seconds, 2),
        "sources": sources,
        "skipped": sum(r["skipped"] for r in results),
        "array": f"{results[0]['format']} {results[0]['shape']}",
        "camctl_cpu_percent": round(camctl_cpu / wall * 100, 1),
        "consumers_cpu_percent": round(sum(r["cpu_s"] for r in results) / seconds * 100, 1),
        "consumers_cpu_s": sum(r["cpu_s"] for r in results),
        "latency_event_to_array_ms": {
            "p50": round(statistics.median(latencies), 2),
            "p95": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
            "max": round(latencies[-1], 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--size", default="1920x1080")
    args = parser.parse_args()
    names = [f"cam_{i}" for i in range(1, args.cameras + 1)]
    report: dict[str, Any] = {
        "benchmark": f"{args.cameras} cameras {args.size}@30 under run-all, a consumer per camera at 10 fps, "
        f"{args.seconds:g} s per phase",
        "cpus": os.cpu_count(),
    }
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        cams = stack.enter_context(FakeCameras(count=args.cameras, size=args.size, fps=30, bitrate=2048, gop=30))
        nats = stack.enter_context(NatsServer())
        port = free_port()
        urls = {name: f"{{url: '{cams.url(f'cam{i}')}', analysis_fps: 10}}" for i, name in enumerate(names, 1)}
        extra = f"storage: {{root: '{tmp / 'rec'}', retention: {{min_free: null}}}}\nnode: bench-{os.getpid()}\n"
        config = write_ingest_config(tmp / "camctl.yaml", urls, nats.url, port, extra)
        proc = stack.enter_context(CamctlProcess(config, tmp / "d", "run-all"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            code, _h, body = http_get(f"http://127.0.0.1:{port}/status")
            if code == 200 and all(c["online"] for c in json.loads(body)["cameras"]):
                break
            time.sleep(0.5)
        time.sleep(5)
        before, started = tree_cpu(proc.proc.pid), time.monotonic()
        time.sleep(args.seconds)
        idle = (tree_cpu(proc.proc.pid) - before) / (time.monotonic() - started)
        report["camctl_cpu_percent_no_consumer"] = round(idle * 100, 1)
        for label, shm in (("shared_memory", True), ("jpeg_over_http", False)):
            phase = consumers(names, nats.url, args.seconds, shm, proc.proc.pid)
            extra_cpu = max(0.0, phase["camctl_cpu_percent"] / 100 - idle) * args.seconds
            phase["cpu_ms_per_analysed_frame"] = round(
                (extra_cpu + phase["consumers_cpu_s"]) / phase["frames_analysed"] * 1000, 2
            )
            report[label] = phase
            time.sleep(6)  # the ring's writer notices the readers are gone
        proc.terminate()
    shm_cost = report["shared_memory"]["cpu_ms_per_analysed_frame"]
    report["ratio_jpeg_over_shm_cpu_per_frame"] = round(report["jpeg_over_http"]["cpu_ms_per_analysed_frame"]
                                                        / max(shm_cost, 1e-6), 1)  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
