#!/usr/bin/env python3
"""`camctl run-all` under the seed's load: 4 cameras 1080p30 2 Mbit/s, recording and ingest.

Samples the whole process tree (supervisor, workers, embedded helpers) every 10 s: RSS, PSS and
USS (sums) and CPU. Counts frame events per second on NATS, glass-to-event latency from stamped cameras (a sample
of events whose JPEG is the event's frame, as in bench_latency), and after the run compares the
frames recorded (journal) with what the cameras sent over the recorded span. --soak HOURS for long
runs (RSS at the end vs the peak shows growth). Only --stamped cameras (default 1) encode live, to
carry their capture time; the others replay a loop encoded once, so the load generator stays cheap.
Peers: the seed's 1.5 GB container limit (goal: under 400 MB for the tree), and, in the same run
after run-all stops, what the FFmpeg CLI spends on the same work: one `ffmpeg -c copy -f segment`
recorder and one decoder (`-f null`) per camera, for --peer-seconds.

    .venv/bin/python scripts/bench_runall.py --seconds 300
"""

from __future__ import annotations

import argparse
import contextlib
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
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av

from camctl.recording.index import build_index
from tests.harness import CamctlProcess, FakeCameras, NatsServer, free_port, read_stamp
from tests.ingest_helpers import EventTap, http_get, write_ingest_config
from tests.recording_helpers import ReferenceClient


def tree(root_pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def usage(pids: list[int]) -> tuple[float, float]:
    """(RSS MiB, CPU seconds) summed over live processes."""
    rss = cpu = 0.0
    tick, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / tick
        rss += int(fields[21]) * page / 2**20
    return rss, cpu


def shared_aware(pids: list[int]) -> tuple[float, float]:
    """(PSS, USS) MiB summed over live processes: PSS splits each shared page (the libraries every
    worker maps) among the processes mapping it, USS counts private pages only. A container's
    memory limit charges a page once, so the tree's real footprint lies between USS and the RSS sum,
    close to PSS."""
    pss = uss = 0.0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key == "Pss":
                pss += int(value.split()[0]) / 1024
            elif key in ("Private_Clean", "Private_Dirty"):
                uss += int(value.split()[0]) / 1024
    return pss, uss


class MemoryCgroup:
    """A cgroup (v1 memory controller, as this box has) holding run-all's process tree: what a
    container's memory limit would see. The benchmark steps into it only while starting run-all,
    so the children are born inside and the fake cameras and this script stay out."""

    def __init__(self) -> None:
        self.path: Path | None = None
        try:
            own = next(line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
                       if line.split(":")[1] == "memory")  # fmt: skip
            self.parent = Path("/sys/fs/cgroup/memory") / own.lstrip("/")
            path = self.parent / f"camctl-bench-{os.getpid()}"
            path.mkdir()
            self.path = path
        except (OSError, StopIteration, IndexError):
            self.path = None  # no writable memory cgroup here: the sums of RSS/PSS/USS still tell

    def enter(self) -> None:
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def leave(self) -> None:
        if self.path is not None:
            (self.parent / "cgroup.procs").write_text(str(os.getpid()))

    def working_set(self) -> float | None:
        """MiB of anonymous memory plus mapped files (libraries), without the page cache of the
        recordings being written (reclaimable, and not what the budget is about)."""
        if self.path is None:
            return None
        stat = dict(line.split() for line in (self.path / "memory.stat").read_text().splitlines())
        return (int(stat["rss"]) + int(stat["mapped_file"])) / 2**20

    def close(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.rmdir()


def ffmpeg_peers(urls: list[str], folder: Path, seconds: float) -> dict[str, Any]:
    """The same work by the FFmpeg CLI: per camera a stream-copy segment recorder and a decoder.
    CPU over `seconds` after a 10 s start."""
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise SystemExit("ffmpeg CLI not found (apt-get install ffmpeg)")
    procs = []
    for n, url in enumerate(urls):
        (folder / str(n)).mkdir(parents=True)
        common = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url]
        procs.append(subprocess.Popen([*common, "-c", "copy", "-f", "segment", "-segment_time", "60",
                                       "-segment_format", "mp4", str(folder / str(n) / "seg_%04d.mp4")]))  # fmt: skip
        procs.append(subprocess.Popen([*common, "-f", "null", "-"]))
    try:
        time.sleep(10)
        before = usage([p.pid for p in procs])[1]
        time.sleep(seconds)
        spent = usage([p.pid for p in procs])[1] - before
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return {"processes": f"{len(urls)} x ffmpeg -c copy -f segment + {len(urls)} x ffmpeg -f null (decode)",
            "seconds": seconds, "cpu_percent_of_one_core": round(spent / seconds * 100, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--soak", type=float, metavar="HOURS", help="run this many hours instead")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--stamped", type=int, default=1, help="cameras that encode live with a stamp (latency)")
    parser.add_argument("--peer-seconds", type=float, default=60, help="the FFmpeg peers' run (0: none)")
    args = parser.parse_args()
    seconds = args.soak * 3600 if args.soak else args.seconds
    names = [f"cam{i + 1}" for i in range(args.cameras)]
    samples: list[tuple[float, float, float]] = []  # (time, rss, cpu)
    shared: list[tuple[float, float]] = []  # (pss, uss)
    working_sets: list[float] = []  # the cgroup's anonymous + mapped-file memory
    latencies: list[float] = []
    events = 0
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        stamped = min(args.stamped, args.cameras)
        live = [FakeCameras(count=stamped, size=args.size, fps=args.fps, bitrate=2048, gop=args.fps, stamp=True)]
        replayed = [FakeCameras(count=args.cameras - stamped, size=args.size, fps=args.fps, bitrate=2048,
                                gop=args.fps)] if args.cameras > stamped else []  # fmt: skip
        generators = [stack.enter_context(c) for c in live + replayed]
        camera_urls = [url for c in generators for url in c.urls.values()]
        nats_server = stack.enter_context(NatsServer())
        port = free_port()
        urls = {f"cam_{n[3:]}": camera_urls[i] for i, n in enumerate(names)}
        stamped_ids = {f"cam_{n[3:]}" for n in names[:stamped]}
        root = tmp / "rec"
        extra = f"storage: {{root: '{root}', segment_seconds: 60, retention: {{min_free: null}}}}\n"
        config = write_ingest_config(tmp / "camctl.yaml", urls, nats_server.url, port, extra)
        refs = {n: stack.enter_context(ReferenceClient(camera_urls[i])) for i, n in enumerate(names)}
        cgroup = MemoryCgroup()
        stack.callback(cgroup.close)
        cgroup.enter()
        try:
            proc = stack.enter_context(CamctlProcess(config, tmp / "d", "run-all"))
        finally:
            cgroup.leave()
        tap = stack.enter_context(EventTap(nats_server.url, ["seguranca.camera.frame"]))
        tap.wait("the first event", lambda e: True, 60)
        started = time.monotonic()
        generator_cpu = {id(c): usage([c.proc.pid])[1] for c in generators if c.proc is not None}
        next_sample = started
        next_fetch: dict[str, float] = {}
        while time.monotonic() - started < seconds:
            if time.monotonic() >= next_sample:
                pids = tree(proc.proc.pid)
                samples.append((time.monotonic() - started, *usage(pids)))
                shared.append(shared_aware(pids))
                working_sets.append(cgroup.working_set() or 0.0)
                next_sample += 10
            try:
                _subject, event, received = tap.events.get(timeout=1.0)
            except queue.Empty:
                continue
            events += 1
            cam = event["camera_id"]
            if cam not in stamped_ids or time.monotonic() < next_fetch.get(cam, 0.0):
                continue
            next_fetch[cam] = time.monotonic() + 2.0
            code, headers, body = http_get(event["url"])
            if code != 200 or int(headers.get("X-Frame-Number", -1)) != event["frame_number"]:
                continue
            with av.open(io.BytesIO(body), format="mjpeg") as jpeg:
                picture = next(jpeg.decode(video=0))
            plane = picture.planes[0]
            latency = (received - read_stamp(bytes(plane), picture.width, picture.height, plane.line_size)[1]) * 1000
            if 0 <= latency < 10_000:
                latencies.append(latency)
        elapsed = time.monotonic() - started
        generator_cpu = {k: usage([c.proc.pid])[1] - generator_cpu[id(c)] for c in generators if c.proc is not None
                         for k in ["stamped (live)" if c in live else "replayed"]}  # fmt: skip
        samples.append((elapsed, *usage(tree(proc.proc.pid))))
        shared.append(shared_aware(tree(proc.proc.pid)))
        by_process = {}
        for pid in tree(proc.proc.pid):
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                worker = cmdline[cmdline.index(b"worker") + 1].decode() if b"worker" in cmdline else ""
                by_process[f"{pid} {worker or Path(cmdline[0].decode()).name}"] = round(usage([pid])[0], 1)
        exit_status, stop_seconds = proc.terminate(timeout=30)
        recorded = {}
        for cam, index in build_index(root).items():
            first, last = index.segments[0].start, index.segments[-1].end
            # Frames the camera really sent in the recorded span (the fake cameras drop frames when
            # the box is saturated, so span x fps would overstate it), as a reference client saw them.
            sent = sum(1 for t in refs[f"cam{cam[4:]}"].arrivals if first <= t < last)
            frames = sum(s.frames for s in index.segments)
            gaps = len(index.window(first, last).gaps)
            recorded[cam] = {"frames": frames, "sent_in_span": sent, "lost": sent - frames,
                             "segments": len(index.segments), "gaps_inside": gaps}  # fmt: skip
        peer = ffmpeg_peers(camera_urls, tmp / "peers", args.peer_seconds) if args.peer_seconds else None
    cpu_total = samples[-1][2] - samples[0][2]
    camctl_pct = cpu_total / (samples[-1][0] - samples[0][0]) * 100
    ordered = sorted(latencies)
    report: dict[str, Any] = {
        "benchmark": f"run-all, {args.cameras} cameras ({stamped} stamped) {args.size}@{args.fps} 2 Mbit/s, "
        "recording + ingest, "
        f"{elapsed:.0f} s",
        "cpus": os.cpu_count(),
        "rss_mib": {
            "peak": round(max(s[1] for s in samples), 1),
            "first": round(samples[0][1], 1),
            "end": round(samples[-1][1], 1),
        },
        "pss_mib": {"peak": round(max(p for p, _u in shared), 1), "end": round(shared[-1][0], 1)},
        "uss_mib": {"peak": round(max(u for _p, u in shared), 1), "end": round(shared[-1][1], 1)},
        "cgroup_rss_plus_mapped_mib": {"peak": round(max(working_sets), 1), "end": round(working_sets[-1], 1)}
        if any(working_sets)
        else None,
        "cpu_percent_of_one_core": round(camctl_pct, 1),
        "ffmpeg_peers": peer,
        "ratio_cpu_vs_ffmpeg": round(camctl_pct / peer["cpu_percent_of_one_core"], 2) if peer else None,
        "fake_cameras_cpu_percent": {k: round(v / elapsed * 100, 1) for k, v in generator_cpu.items()},
        "events_per_s": round(events / elapsed, 1),
        "latency_ms": {
            "n": len(ordered),
            "p50": round(statistics.median(ordered), 1) if ordered else None,
            "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 1) if ordered else None,
        },
        "recorded": recorded,
        "exit_status": exit_status,
        "stop_seconds": round(stop_seconds, 2),
        "rss_timeline_mib": [round(s[1]) for s in samples],
        "rss_by_process_at_end_mib": by_process,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
