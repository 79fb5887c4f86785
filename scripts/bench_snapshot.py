#!/usr/bin/env python3
"""Cold snapshot: `camctl snapshot` vs `ffmpeg -rtsp_transport tcp -i URL -frames:v 1 out.jpg`.

One fake camera (1080p30, GOP 30, 2 Mbit/s) on loopback, kept busy by a background viewer so that
each snapshot joins a running, shared stream. (gst-rtsp-server answers each PLAY with a seek that
restarts the shared encoder on a keyframe, so neither tool waits for the GOP here; a camera that
does not would add up to one keyframe interval, 1 s, to both.) The two tools alternate,
--runs each, in one run. Prints JSON: median and p90 wall time, peak RSS, and camctl/ffmpeg ratios.

    .venv/bin/python scripts/bench_snapshot.py --runs 10
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av

from tests.harness import FakeCameras


def run_measured(argv: list[str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS in KiB and exit status of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {err.strip()[-500:]}")
    return elapsed, usage.ru_maxrss, proc.returncode


def keep_viewing(url: str, stop: threading.Event) -> None:
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=10) as container:
        for _ in container.demux(video=0):
            if stop.is_set():
                return


def summary(times: list[float], rss: list[int]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_s": round(statistics.median(ordered), 3),
        "p90_s": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3),
        "min_s": round(ordered[0], 3),
        "max_s": round(ordered[-1], 3),
        "peak_rss_mib": round(max(rss) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise SystemExit("ffmpeg CLI not found (apt-get install ffmpeg)")
    with (
        FakeCameras(count=1, size="1920x1080", fps=30, bitrate=2048, gop=30) as cams,
        tempfile.TemporaryDirectory() as tmp,
    ):
        url = cams.url()
        config = Path(tmp) / "camctl.yaml"
        config.write_text(f"cameras:\n  cam_1: {url}\n")
        stop = threading.Event()
        viewer = threading.Thread(target=keep_viewing, args=(url, stop), daemon=True)
        viewer.start()
        time.sleep(1.0)  # the viewer is connected: the camera's encoder is running
        tools = {
            "camctl": [
                sys.executable,
                "-m",
                "camctl",
                "--config",
                str(config),
                "snapshot",
                "cam_1",
                "-o",
                f"{tmp}/camctl.jpg",
            ],
            "ffmpeg": [
                ffmpeg,
                "-v",
                "error",
                "-rtsp_transport",
                "tcp",
                "-i",
                url,
                "-frames:v",
                "1",
                "-y",
                f"{tmp}/ffmpeg.jpg",
            ],
        }
        results: dict[str, dict[str, list[Any]]] = {name: {"t": [], "rss": []} for name in tools}
        for _ in range(args.runs):
            for name, argv in tools.items():  # alternate, so both see the same conditions
                elapsed, rss, _ = run_measured(argv)
                results[name]["t"].append(elapsed)
                results[name]["rss"].append(rss)
        stop.set()
        sizes = {name: (Path(tmp) / f"{name}.jpg").stat().st_size for name in tools}
    report: dict[str, Any] = {
        "benchmark": "cold snapshot, 1 camera 1920x1080@30 GOP 30 2 Mbit/s, shared stream with one viewer",
        "runs": args.runs,
        "python": sys.version.split()[0],
        "pyav": av.__version__,
        "ffmpeg_cli": subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, check=False).stdout.split(
            "\n"
        )[0],
    }
    for name in tools:
        report[name] = summary(results[name]["t"], results[name]["rss"]) | {"jpeg_bytes": sizes[name]}
    report["ratio_median_wall"] = round(report["camctl"]["median_s"] / report["ffmpeg"]["median_s"], 2)
    report["ratio_peak_rss"] = round(report["camctl"]["peak_rss_mib"] / report["ffmpeg"]["peak_rss_mib"], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
