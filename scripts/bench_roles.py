#!/usr/bin/env python3
"""Streams and roles: what `camctl run-all` spends when it decodes only what is used.

Scenarios, each in this one run, beside the FFmpeg CLI doing the same work:
- `main+sub`: N cameras with a main (1080p30 2 Mbit/s) and a sub stream (640x360@15), analysis
  5 fps on the sub, main recorded, nobody watching. Peer: N x `ffmpeg -c copy -f segment` of the
  main + N x `ffmpeg -f null` decoding the sub.
- `main-only, keyframes`: the same cameras without a sub, analysis at 1 fps (the keyframe rate),
  so only keyframes are decoded. Peer: copy-record + `-skip_frame nokey` decode.
- `main-only, every frame` (what run-all did before roles): analysis decodes every picture of the
  main (decode: full). Peer: copy-record + full decode.
- `--many 16`: 16 cameras with subs: CPU per camera against the 4-camera run, and PSS.
- The live page's bytes: what N `live.mp4` viewers receive per second from the tile's default
  stream (the sub) against `?stream=main` (what every tile played before).
The fake cameras replay loops encoded once, so they cost little of the box.

    .venv/bin/python scripts/bench_roles.py --seconds 60 --many 16
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_runall import shared_aware, tree, usage

from tests.harness import CamctlProcess, FakeCameras, NatsServer, free_port
from tests.ingest_helpers import http_get

WARM = 15.0  # seconds before measuring: connections made, the keyframe rate known, loops cached


def camera_yaml(cams: FakeCameras, names: list[str], sub: bool, settings: str) -> str:
    lines = []
    for n, name in enumerate(names, 1):
        if sub:
            lines.append(f"  cam_{n}:\n    streams: {{main: '{cams.url(name)}', sub: '{cams.url(name, 'sub')}'}}\n"
                         f"    {settings}\n")  # fmt: skip
        else:
            lines.append(f"  cam_{n}: {{url: '{cams.url(name)}', {settings}}}\n")
    return "".join(lines)


def run_all_cpu(cams: FakeCameras, count: int, sub: bool, settings: str, seconds: float, tmp: Path,
                nats_url: str, viewers: int = 0) -> dict[str, Any]:  # fmt: skip
    """run-all's CPU (% of one core) and PSS over `seconds`, after WARM; with viewers, the bytes
    per second N live.mp4 clients get from the default stream and from ?stream=main."""
    names = list(cams.urls)[:count]
    port = free_port()
    root = tmp / f"rec-{time.monotonic_ns()}"
    config = tmp / "camctl.yaml"
    config.write_text(
        f"cameras:\n{camera_yaml(cams, names, sub, settings)}"
        f"storage: {{root: '{root}', segment_seconds: 60, retention: {{min_free: null}}}}\n"
        f"nats: {{url: '{nats_url}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\n"
    )
    with CamctlProcess(config, tmp / "d", "run-all") as proc:
        deadline = time.monotonic() + 60
        while http_get(f"http://127.0.0.1:{port}/cam{count}/frame.jpg")[0] != 200:
            if time.monotonic() > deadline:
                raise SystemExit(f"run-all did not serve cam{count} in 60 s: {proc.stderr[-2000:]}")
            time.sleep(0.5)
        time.sleep(WARM)  # a benchmark's settling time, not a synchronisation
        pids = tree(proc.proc.pid)
        before, started = usage(pids)[1], time.monotonic()
        time.sleep(seconds)
        pids = tree(proc.proc.pid)
        cpu = (usage(pids)[1] - before) / (time.monotonic() - started) * 100
        pss = shared_aware(pids)[0]
        status = json.loads(http_get(f"http://127.0.0.1:{port}/status")[2])["cameras"]
        modes = sorted({f"{name}:{s['decode']}" for c in status for name, s in c["streams"].items()})
        page = {}
        if viewers:
            page = {"tiles_default_stream_kbit_s": live_bytes(port, viewers, None),
                    "tiles_main_kbit_s": live_bytes(port, viewers, "main")}  # fmt: skip
        proc.terminate(timeout=30)
    return {"cameras": count, "cpu_percent_of_one_core": round(cpu, 1), "pss_mib": round(pss, 1),
            "decode": modes, **page}  # fmt: skip


def live_bytes(port: int, viewers: int, stream: str | None, seconds: float = 10.0) -> float:
    """kbit/s that `viewers` live.mp4 clients (one per camera) receive together."""
    got = [0] * viewers
    stop = threading.Event()

    def watch(n: int) -> None:
        query = f"?stream={stream}" if stream else ""
        url = f"http://127.0.0.1:{port}/cam{n + 1}/live.mp4{query}"
        with urllib.request.urlopen(url, timeout=10) as r:
            while not stop.is_set():
                chunk = r.read1(65536)
                if not chunk:
                    break
                got[n] += len(chunk)

    threads = [threading.Thread(target=watch, args=(n,), daemon=True) for n in range(viewers)]
    for t in threads:
        t.start()
    time.sleep(2.0)  # past the first GOP each viewer is sent at once
    first = sum(got)
    time.sleep(seconds)
    rate = (sum(got) - first) * 8 / 1000 / seconds
    stop.set()
    for t in threads:
        t.join(5)
    return round(rate, 1)


def ffmpeg_cpu(jobs: list[list[str]], seconds: float, tmp: Path) -> float:
    """% of one core that these ffmpeg command lines spend together over `seconds`, after WARM."""
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise SystemExit("ffmpeg CLI not found (apt-get install ffmpeg)")
    procs = [subprocess.Popen([ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", *job], cwd=tmp)
             for job in jobs]  # fmt: skip
    try:
        time.sleep(WARM)
        before, started = usage([p.pid for p in procs])[1], time.monotonic()
        time.sleep(seconds)
        return round((usage([p.pid for p in procs])[1] - before) / (time.monotonic() - started) * 100, 1)
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def record_jobs(urls: list[str], tmp: Path) -> list[list[str]]:
    jobs = []
    for n, url in enumerate(urls):
        (tmp / f"peer{n}").mkdir(exist_ok=True)
        jobs.append(["-rtsp_transport", "tcp", "-i", url, "-c", "copy", "-f", "segment", "-segment_time", "60",
                     "-segment_format", "mp4", str(tmp / f"peer{n}" / "seg_%04d.mp4")])  # fmt: skip
    return jobs


def decode_jobs(urls: list[str], keyframes: bool = False) -> list[list[str]]:
    skip = ["-skip_frame", "nokey"] if keyframes else []
    return [[*skip, "-rtsp_transport", "tcp", "-i", url, "-f", "null", "-"] for url in urls]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="measured per scenario")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--many", type=int, default=16, help="cameras with subs for the scaling run (0: none)")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--sub", default="640x360@15")
    args = parser.parse_args()
    main_stream = f"{args.size}@{args.fps} 2 Mbit/s"
    report: dict[str, Any] = {"cpus": os.cpu_count(), "seconds": args.seconds, "main": main_stream, "sub": args.sub}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        count = max(args.cameras, args.many)
        cams = FakeCameras(count=count, size=args.size, fps=args.fps, bitrate=2048, gop=args.fps, sub=args.sub)
        stack.callback(cams.stop)
        print(f"== {count} fake cameras (their loops are encoded once, then cached)", file=sys.stderr, flush=True)
        cams.start(timeout=900)
        nats = stack.enter_context(NatsServer())
        n = args.cameras
        mains = [cams.url(name) for name in list(cams.urls)[:n]]
        subs = [cams.url(name, "sub") for name in list(cams.urls)[:n]]

        def scenario(name: str, sub: bool, settings: str, peer: list[list[str]], viewers: int = 0) -> None:
            print(f"== {name}", file=sys.stderr, flush=True)
            ours = run_all_cpu(cams, n, sub, settings, args.seconds, tmp, nats.url, viewers)
            theirs = ffmpeg_cpu(peer, args.seconds, tmp)
            ratio = round(ours["cpu_percent_of_one_core"] / theirs, 2) if theirs else None
            report[name] = {"camctl": ours, "ffmpeg_cpu_percent_of_one_core": theirs, "ratio": ratio}

        scenario("main+sub, analysis 5 fps on the sub", True, "analysis_fps: 5",
                 record_jobs(mains, tmp) + decode_jobs(subs), viewers=n)  # fmt: skip
        scenario("main-only, analysis 1 fps (keyframes)", False, "analysis_fps: 1",
                 record_jobs(mains, tmp) + decode_jobs(mains, keyframes=True))  # fmt: skip
        scenario("main-only, every frame decoded (before roles)", False, "decode: full",
                 record_jobs(mains, tmp) + decode_jobs(mains))  # fmt: skip
        if args.many:
            print(f"== {args.many} cameras with subs", file=sys.stderr, flush=True)
            many = run_all_cpu(cams, args.many, True, "analysis_fps: 5", args.seconds, tmp, nats.url)
            four = report["main+sub, analysis 5 fps on the sub"]["camctl"]["cpu_percent_of_one_core"]
            report[f"{args.many} cameras with subs"] = {
                **many, f"cpu_vs_{n}_cameras": round(many["cpu_percent_of_one_core"] / four, 2) if four else None,
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
