#!/usr/bin/env python3
"""The copy elsewhere: what copying footage off the box costs, and how fast it catches up.

In this one run, against a real S3 server on loopback (`rclone serve s3` on a temporary folder):
- `live`: N cameras at 2 Mbit/s (1080p30, replayed loops: they cost little of the box) recorded by
  `camctl run-all` with `copy.to` the S3 bucket: the lag from each segment's close to its checked
  copy (p50/p95, against the segment length), and the CPU of copying: run-all's supervisor (the
  copier's thread and its rclone children) with the copy, less the same without it, same length.
- `catch-up`: a 10-minute outage's backlog (N cameras x 10 min of those segments) copied by
  `camctl copy` (oldest first, each checked), beside `rclone copy` of the same tree in one go (the
  peer: rclone alone, nothing checked beyond its own), in MB/s and CPU seconds.

    .venv/bin/python scripts/bench_copy.py --seconds 120 --segment 10
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_runall import tree

from camctl.offsite.rclone import find_rclone
from camctl.storage.layout import segment_path
from tests.harness import CamctlProcess, FakeCameras, NatsServer, free_port
from tests.ingest_helpers import http_get
from tests.rclone_server import RcloneServer

WARM = 10.0  # seconds before measuring: connections made, first segments closed


def supervisor_cpu(pid: int) -> float:
    """CPU seconds of run-all's own process (the copier's thread), of its children that ended, and
    of the rclone daemons it runs (the cameras' workers are not counted)."""
    total = 0.0
    for one in [pid] + [p for p in tree(pid) if p != pid and _comm(p) == "rclone"]:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{one}/stat").read_text().rpartition(")")[2].split()
            total += sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def run_all(cams: FakeCameras, count: int, nats: str, seconds: float, segment: float, tmp: Path,
            s3: RcloneServer | None) -> dict[str, Any]:  # fmt: skip
    port = free_port()
    root = tmp / f"rec-{time.monotonic_ns()}"
    copy = f"copy: {{to: '{s3.remote}'}}\n" if s3 else ""
    cameras = "".join(f"  cam_{n}: '{cams.url(name)}'\n" for n, name in enumerate(list(cams.urls)[:count], 1))
    config = tmp / "camctl.yaml"
    config.write_text(f"cameras:\n{cameras}storage: {{root: '{root}', segment_seconds: {segment}, "
                      f"retention: {{min_free: null}}}}\nnats: {{url: '{nats}'}}\n"
                      f"http: {{listen: '127.0.0.1:{port}'}}\n{copy}")  # fmt: skip
    with CamctlProcess(config, tmp / "d", "run-all", env=s3.env() if s3 else None) as proc:
        time.sleep(WARM)  # a benchmark's settling time, not a synchronisation
        before, started = supervisor_cpu(proc.proc.pid), time.monotonic()
        time.sleep(seconds)
        cpu = (supervisor_cpu(proc.proc.pid) - before) / (time.monotonic() - started) * 100
        status = json.loads(http_get(f"http://127.0.0.1:{port}/status")[2])
        proc.terminate(timeout=30)
    result: dict[str, Any] = {"supervisor_cpu_percent": round(cpu, 2), "root": str(root)}
    if s3 is not None:
        lags = []
        for path in s3.stored(".copy/index").rglob("*.jsonl"):
            lags += [e["copied"] - e["end"] for e in map(json.loads, path.read_text().splitlines())]
        lags.sort()
        result |= {"copied": len(lags), "lag_p50_s": round(statistics.median(lags), 2),
                   "lag_p95_s": round(lags[int(len(lags) * 0.95) - 1], 2), "status": status.get("copy")}  # fmt: skip
    return result


def backlog(source: Path, target: Path, cameras: int, minutes: float, segment: float) -> tuple[int, int]:
    """A 10-minute outage's footage: the recorded segments, repeated under the names and journal
    lines of `minutes` of footage per camera ending now. Returns (segments, bytes)."""
    files = sorted(source.rglob("cam_*/**/*.mp4"))
    if not files:
        raise SystemExit("no recorded segments to make the backlog from")
    now = time.time() - 60
    count = int(minutes * 60 / segment)
    total = 0
    for cam in range(1, cameras + 1):
        journal = []
        for n in range(count):
            start = now - (count - n) * segment
            path = segment_path(target, f"cam_{cam}", _utc(start))
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(files[(cam * 7 + n) % len(files)], path)
            os.utime(path, (start + segment, start + segment))
            size = path.stat().st_size
            total += size
            journal.append(json.dumps({"type": "segment", "file": str(path.relative_to(target / f"cam_{cam}")),
                                       "start": start, "end": start + segment, "frames": int(segment * 30),
                                       "bytes": size, "codec": "h264"}))  # fmt: skip
        (target / f"cam_{cam}" / "recordings.jsonl").write_text("\n".join(journal) + "\n")
    return cameras * count, total


def _utc(t: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run(argv, env={**os.environ, **env}, check=True, capture_output=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=120.0, help="each live run (with and without the copy)")
    parser.add_argument("--segment", type=float, default=10.0, help="segment_seconds of the live runs")
    parser.add_argument("--outage", type=float, default=10.0, help="minutes of footage in the catch-up backlog")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-copy-"))
    results: dict[str, Any] = {"cameras": args.cameras, "segment_seconds": args.segment}
    try:
        with NatsServer() as nats, FakeCameras(count=args.cameras, size="1920x1080", fps=30, bitrate=2048,
                                                gop=30).start() as cams:  # fmt: skip
            s3 = RcloneServer("s3", tmp / "s3").start()
            try:
                without = run_all(cams, args.cameras, nats.url, args.seconds, args.segment, tmp, None)
                with_copy = run_all(cams, args.cameras, nats.url, args.seconds, args.segment, tmp, s3)
                results["live"] = {
                    "lag_p50_s": with_copy["lag_p50_s"], "lag_p95_s": with_copy["lag_p95_s"],
                    "copied": with_copy["copied"],
                    "copy_cpu_percent": round(with_copy["supervisor_cpu_percent"]
                                              - without["supervisor_cpu_percent"], 2),
                    "supervisor_cpu_percent": {"without copy": without["supervisor_cpu_percent"],
                                               "with copy": with_copy["supervisor_cpu_percent"]},
                }  # fmt: skip
                root = tmp / "outage"
                segments, size = backlog(Path(without["root"]), root, args.cameras, args.outage, args.segment)
                config = tmp / "outage.yaml"
                config.write_text("cameras:\n" + "".join(f"  cam_{n}: 'demo:'\n" for n in range(1, args.cameras + 1))
                                  + f"storage: {{root: '{root}', segment_seconds: {args.segment}}}\n"
                                  f"copy: {{to: '{s3.remote}/outage'}}\n")  # fmt: skip
                camctl_wall, camctl_cpu = timed([sys.executable, "-m", "camctl", "-c", str(config), "copy", "--json"],
                                                s3.env())  # fmt: skip
                peer_wall, peer_cpu = timed([str(find_rclone()), "copy", str(root), f"{s3.remote}/peer",
                                             "--exclude", ".*/**", "--exclude", "*.jsonl"], s3.env())  # fmt: skip
                results["catch_up"] = {
                    "backlog": {"segments": segments, "megabytes": round(size / 1e6, 1), "minutes": args.outage},
                    "camctl_copy": {"seconds": round(camctl_wall, 1), "mb_per_s": round(size / 1e6 / camctl_wall, 1),
                                    "cpu_seconds": round(camctl_cpu, 1),
                                    "x_realtime": round(args.outage * 60 / camctl_wall, 1)},
                    "rclone_copy": {"seconds": round(peer_wall, 1), "mb_per_s": round(size / 1e6 / peer_wall, 1),
                                    "cpu_seconds": round(peer_cpu, 1)},
                    "ratio_time": round(camctl_wall / peer_wall, 2),
                }  # fmt: skip
            finally:
                s3.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
