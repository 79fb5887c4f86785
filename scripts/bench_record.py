#!/usr/bin/env python3
"""Recording: `camctl record` vs one `ffmpeg -c copy -f segment` per camera, side by side.

Four fake cameras (default 1920x1080@30, GOP 30, 2 Mbit/s CBR) on loopback. Both recorders run at
the same time on the same shared streams, so they see identical conditions, with 10 s segments
each, for --seconds. A reference client per camera keeps the coded slices of every frame the
camera sent; each recording is compared with it (difflib over the slice sequences) to count frames
lost or doubled between the recording's first and last frame. CPU seconds and peak RSS come from
wait4() of each recorder process. Prints JSON with camctl/ffmpeg ratios.

    .venv/bin/python scripts/bench_record.py --seconds 60
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av

from tests.harness import FakeCameras
from tests.recording_helpers import ReferenceClient, segment_frames, slices_of


def stop_and_measure(proc: subprocess.Popen[bytes], sig: int) -> tuple[float, float]:
    """Stops a recorder with sig; returns (CPU seconds, peak RSS MiB) from wait4."""
    proc.send_signal(sig)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{proc.args} did not stop within 15 s")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a running process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def compare(reference: list[str], recorded: list[str], slices_per_frame: float) -> dict[str, Any]:
    """Frames missing from / doubled in the recording, within the span it covers."""
    if not recorded:
        return {"frames": 0, "lost": None, "doubled": None}
    starts = [i for i, h in enumerate(reference) if h == recorded[0]]
    best: tuple[int, int, int] | None = None
    for start in starts:  # the first recorded frame may repeat in a static picture: take the best fit
        window = reference[start : start + len(recorded) + 200]
        matcher = difflib.SequenceMatcher(None, window, recorded, autojunk=False)
        blocks = matcher.get_matching_blocks()
        matched = sum(b.size for b in blocks)
        last_ref = max((b.a + b.size for b in blocks if b.size), default=0)
        lost, doubled = last_ref - matched, len(recorded) - matched
        if best is None or lost + doubled < best[0] + best[1]:
            best = (lost, doubled, matched)
    assert best is not None
    return {
        "frames": round(len(recorded) / slices_per_frame),
        "lost": round(best[0] / slices_per_frame),
        "doubled": round(best[1] / slices_per_frame),
    }


def recorded_slices(files: list[Path]) -> tuple[list[str], int, int]:
    slices: list[str] = []
    samples = 0
    for path in files:
        frames = segment_frames(path)
        samples += len(frames)
        slices += slices_of(frames)
    return slices, samples, sum(p.stat().st_size for p in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--bitrate", type=int, default=2048, help="kbit/s")
    args = parser.parse_args()
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise SystemExit("ffmpeg CLI not found (apt-get install ffmpeg)")
    names = [f"cam{i + 1}" for i in range(args.cameras)]
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        cams = stack.enter_context(
            FakeCameras(count=args.cameras, size=args.size, fps=args.fps, bitrate=args.bitrate, gop=args.fps)
        )
        refs = {n: stack.enter_context(ReferenceClient(cams.url(n))) for n in names}
        config = tmp / "camctl.yaml"
        cam_lines = "".join(f"  {n}: {cams.url(n)}\n" for n in names)
        config.write_text(
            f"cameras:\n{cam_lines}storage:\n  root: {tmp / 'camctl'}\n  segment_seconds: 10\n"
            "  retention: {max_age: 24h, min_free: null}\n"
        )
        camctl = subprocess.Popen(
            [sys.executable, "-m", "camctl", "--config", str(config), "record"],
            stdout=subprocess.DEVNULL,
            stderr=(tmp / "camctl.log").open("wb"),
        )
        peers = {}
        for n in names:
            (tmp / "ffmpeg" / n).mkdir(parents=True)
            peers[n] = subprocess.Popen(
                [ffmpeg, "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", cams.url(n),
                 "-c", "copy", "-f", "segment", "-segment_time", "10", "-reset_timestamps", "1",
                 "-segment_format", "mp4", str(tmp / "ffmpeg" / n / "seg_%04d.mp4")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=(tmp / f"ffmpeg-{n}.log").open("wb"),
            )  # fmt: skip
        warmup = min(10.0, args.seconds / 4)
        time.sleep(warmup)  # start-up (imports, connecting) is over: steady-state CPU from here
        assert cams.proc is not None
        measured = [camctl, *peers.values(), cams.proc]  # the load generator too: it must stay cheap
        steady_from = {p.pid: cpu_seconds(p.pid) for p in measured}
        time.sleep(args.seconds - warmup)
        steady = {p.pid: cpu_seconds(p.pid) - steady_from[p.pid] for p in measured}
        camctl_cpu, camctl_rss = stop_and_measure(camctl, signal.SIGTERM)
        peer_usage = [stop_and_measure(p, signal.SIGINT) for p in peers.values()]
        time.sleep(0.5)  # the reference clients take the last frames in flight
        ref_slices = {n: list(r.slices) for n, r in refs.items()}
        ref_frames = {n: r.frames for n, r in refs.items()}

        report: dict[str, Any] = {
            "benchmark": f"record {args.cameras} cameras {args.size}@{args.fps} {args.bitrate} kbit/s "
            f"for {args.seconds:g} s, 10 s segments, both tools at once",
            "python": sys.version.split()[0],
            "pyav": av.__version__,
            "ffmpeg_cli": subprocess.run(
                [ffmpeg, "-version"], capture_output=True, text=True, check=False
            ).stdout.split("\n")[0],
        }
        for tool, per_cam in (
            ("camctl", {n: sorted((tmp / "camctl" / n).rglob("*.mp4")) for n in names}),
            ("ffmpeg", {n: sorted((tmp / "ffmpeg" / n).glob("*.mp4")) for n in names}),
        ):
            cams_report = {}
            total_bytes = total_samples = 0
            for n, files in per_cam.items():
                slices, samples, size = recorded_slices(files)
                per_frame = len(ref_slices[n]) / max(1, ref_frames[n])
                cams_report[n] = compare(ref_slices[n], slices, per_frame) | {"segments": len(files)}
                total_bytes += size
                total_samples += samples
            hours = total_samples / args.fps / 3600
            report[tool] = {
                "cameras": cams_report,
                "frames_lost": sum(c["lost"] or 0 for c in cams_report.values()),
                "frames_doubled": sum(c["doubled"] or 0 for c in cams_report.values()),
                "bytes_per_camera_hour": round(total_bytes / hours) if hours else None,  # hours summed over cameras
            }
        report["camctl"] |= {"cpu_s": round(camctl_cpu, 2), "peak_rss_mib": round(camctl_rss, 1)}
        report["ffmpeg"] |= {
            "cpu_s": round(sum(u[0] for u in peer_usage), 2),
            "peak_rss_mib_sum": round(sum(u[1] for u in peer_usage), 1),
            "processes": len(peer_usage),
        }
        report["steady_seconds"] = round(args.seconds - warmup, 1)
        report["fake_cameras_cpu_pct"] = round(steady[cams.proc.pid] / (args.seconds - warmup) * 100, 1)
        report["camctl"]["steady_cpu_s"] = round(steady[camctl.pid], 2)
        report["ffmpeg"]["steady_cpu_s"] = round(sum(steady[p.pid] for p in peers.values()), 2)
        report["ratio_steady_cpu"] = round(
            report["camctl"]["steady_cpu_s"] / max(0.01, report["ffmpeg"]["steady_cpu_s"]), 2
        )
        report["ratio_cpu"] = round(report["camctl"]["cpu_s"] / max(0.01, report["ffmpeg"]["cpu_s"]), 2)
        report["ratio_peak_rss"] = round(report["camctl"]["peak_rss_mib"] / report["ffmpeg"]["peak_rss_mib_sum"], 2)
        report["camctl_exit"], report["ffmpeg_exits"] = camctl.returncode, [p.returncode for p in peers.values()]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
