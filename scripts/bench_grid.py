#!/usr/bin/env python3
"""Grid cost: `camctl grid` vs `ffmpeg` with the same RTSP inputs + xstack + libx264, one run.

4 fake cameras (1080p30, 2 Mbit/s) replaying loops encoded once (a few % of a core for all four),
so the CPU goes to the grids. Each tool alone on the CPU, one after the other:
1. throughput: a --seconds grid (1920x1080, 30 fps, libx264 zerolatency, 4 Mbit/s, a keyframe a
   second) into an MP4 file: camctl as shipped (the encoder ladder from veryfast), camctl pinned
   to ultrafast, ffmpeg ultrafast and ffmpeg veryfast: CPU seconds and peak RSS (wait4), frames in
   the file, achieved fps, largest gap between frames, the ladder's steps;
2. squeeze: the same beside a busy loop that takes one core (--hog): camctl as shipped steps its
   ladder down and keeps the frame rate; ffmpeg veryfast cannot adapt: its lag behind real time
   (wall time to make --seconds of grid, less --seconds) grows;
3. latency: 20 s of grid as MPEG-TS on stdout, decoded here as it comes, the top-left camera
   stamped (encoded live): its stamp, scaled into its tile, gives the capture time: latency = when
   the grid frame was decoded here - when the camera captured the picture shown. Same decode on
   both sides, so it compares.
Prints JSON with ratios.

    .venv/bin/python scripts/bench_grid.py --seconds 60
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import av

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import FakeCameras, read_stamp

WIDTH, HEIGHT, FPS, BITRATE = 1920, 1080, 30, "4M"


def ffmpeg_grid(ffmpeg: str, urls: list[str], output: list[str], seconds: float, preset: str = "veryfast") -> list[str]:
    """The same grid in one ffmpeg command: 4 RTSP inputs scaled into 960x540 tiles by xstack."""
    inputs: list[str] = []
    for url in urls:
        inputs += ["-rtsp_transport", "tcp", "-analyzeduration", "0", "-probesize", "32", "-i", url]
    scaled = ";".join(f"[{i}:v]scale=960:540,setpts=PTS-STARTPTS[v{i}]" for i in range(len(urls)))
    stack = "".join(f"[v{i}]" for i in range(len(urls))) + "xstack=inputs=4:layout=0_0|960_0|0_540|960_540,fps=30[g]"
    encode = ["-c:v", "libx264", "-preset", preset, "-tune", "zerolatency", "-b:v", BITRATE, "-g", str(FPS),
              "-bf", "0", "-pix_fmt", "yuv420p"]  # fmt: skip
    return [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *inputs, "-filter_complex", f"{scaled};{stack}",
            "-map", "[g]", *encode, "-t", str(seconds), *output]  # fmt: skip


def camctl_grid(config: Path, output: str, seconds: float, preset: str | None = None) -> list[str]:
    return [sys.executable, "-m", "camctl", "--config", str(config), "grid", "-o", output, "-d", f"{seconds}s",
            "--size", f"{WIDTH}x{HEIGHT}", "--fps", str(FPS), "--bitrate", BITRATE, "--encoder", "libx264",
            "--json", *(["--preset", preset] if preset else [])]  # fmt: skip


class Hog:
    """Busy loops, each in a process of its own: a core each, at the grids' own priority."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __enter__(self) -> Hog:
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.count)]
        return self

    def __exit__(self, *_exc: object) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


def camctl_run(
    config: Path, out: Path, seconds: float, env: dict[str, str], preset: str | None = None
) -> dict[str, Any]:
    cpu, rss, wall, stdout = run_for_cost(camctl_grid(config, str(out), seconds, preset), env)
    summary = json.loads(stdout)
    return {"cpu_s": round(cpu, 2), "cpu_percent_of_one_core": round(cpu / wall * 100, 1),
            "peak_rss_mib": round(rss, 1), "wall_s": round(wall, 2), "achieved_fps": summary["fps"],
            "skipped_ticks": summary["skipped"], "arrival_to_mux_ms_p50": summary["latency_ms_p50"],
            "arrival_to_mux_ms_p95": summary["latency_ms_p95"], "preset_at_end": summary["preset"],
            "encoded_fps_at_end": summary["encoded_fps"], "ladder": summary["ladder"]} | file_frames(out)  # fmt: skip


def ffmpeg_run(
    ffmpeg: str, urls: list[str], out: Path, seconds: float, env: dict[str, str], preset: str
) -> dict[str, Any]:
    cpu, rss, wall, _stdout = run_for_cost(ffmpeg_grid(ffmpeg, urls, [str(out)], seconds, preset), env)
    frames = file_frames(out)
    # -t counts grid time: a grid slower than real time takes longer than that to make it
    return {"preset": preset, "cpu_s": round(cpu, 2), "cpu_percent_of_one_core": round(cpu / wall * 100, 1),
            "peak_rss_mib": round(rss, 1), "wall_s": round(wall, 2), "lag_s": round(wall - seconds, 2),
            "achieved_fps": round(frames["frames"] / wall, 2)} | frames  # fmt: skip


def per_frame(a: dict[str, Any], b: dict[str, Any]) -> float:
    """CPU per grid frame of a over b's (the runs differ by a second or so of start-up)."""
    return round((a["cpu_s"] / a["frames"]) / (b["cpu_s"] / b["frames"]), 2)


def run_for_cost(argv: list[str], env: dict[str, str]) -> tuple[float, float, float, bytes]:
    """(CPU seconds, peak RSS MiB, wall seconds, stdout) of a command run to its end."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read() if proc.stdout else b""))
    reader.start()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    err = proc.stderr.read() if proc.stderr else b""
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, time.monotonic() - started, out[0] if out else b""


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def file_frames(path: Path) -> dict[str, Any]:
    times: list[float] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.size and packet.pts is not None and packet.time_base is not None:
                times.append(float(packet.pts * packet.time_base))
        size = f"{stream.codec_context.width}x{stream.codec_context.height}"
    times.sort()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {"frames": len(times), "size": size, "seconds_of_video": round(span, 2),
            "largest_gap_ms": round(max(gaps) * 1000, 1) if gaps else None,
            "bytes": path.stat().st_size}  # fmt: skip


def stream_latency(argv: list[str], env: dict[str, str], seconds: float) -> dict[str, Any]:
    """Runs a grid that writes MPEG-TS to stdout, decodes it here, reads the top-left tile's stamp."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=env, bufsize=0)  # fmt: skip
    latencies: list[float] = []
    deadline = time.monotonic() + seconds + 5
    try:
        assert proc.stdout is not None
        pipe: IO[bytes] = proc.stdout
        with av.open(pipe, format="mpegts", options={"fflags": "nobuffer", "probesize": "32"}) as container:
            for frame in container.decode(video=0):
                now = time.time()
                if time.monotonic() > deadline:
                    break
                luma = bytes(frame.planes[0])
                # Tile 0 is 960x540 at the origin; the stamp's 16 rows became 8: read 4 rows above
                # the tile's bottom (height 544 puts read_stamp's row there), 15-pixel cells.
                _number, captured = read_stamp(luma, WIDTH // 2, HEIGHT // 2 + 4, frame.planes[0].line_size)
                if 0 <= now - captured < 5:
                    latencies.append(now - captured)
    finally:
        proc.terminate()
        proc.wait(10)
    ordered = sorted(latencies[30:])  # past the start-up second
    if not ordered:
        return {"frames": 0}
    return {"frames": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="length of each throughput run")
    parser.add_argument("--latency-seconds", type=float, default=20)
    parser.add_argument("--size", default="1920x1080", help="the cameras' picture size")
    parser.add_argument("--hogs", type=int, default=1, help="busy loops beside the squeeze runs (0: none)")
    parser.add_argument("--squeeze-only", action="store_true", help="skip the throughput and latency runs")
    args = parser.parse_args()
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise SystemExit("ffmpeg CLI not found (apt-get install ffmpeg)")
    report: dict[str, Any] = {
        "benchmark": f"grid 2x2 {WIDTH}x{HEIGHT}@{FPS} libx264 {BITRATE} from 4 cameras {args.size}@30 "
        f"2 Mbit/s, {args.seconds:g} s",
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        cams = stack.enter_context(FakeCameras(count=4, size=args.size, fps=30, bitrate=2048, gop=30))
        urls = [cams.url(f"cam{i}") for i in range(1, 5)]
        config = tmp / "camctl.yaml"
        config.write_text("cameras:\n" + "".join(f"  cam_{i}: '{u}'\n" for i, u in enumerate(urls, 1)))
        env = {k: v for k, v in os.environ.items() if k != "CAMCTL_CONFIG"} | {"CAMCTL_DATA_DIR": str(tmp / "d")}
        assert cams.proc is not None
        generator_from, started = cpu_of(cams.proc.pid), time.monotonic()

        n = args.seconds
        if not args.squeeze_only:
            runs = report["throughput"] = {
                "camctl": camctl_run(config, tmp / "c.mp4", n, env),
                "camctl_ultrafast": camctl_run(config, tmp / "cu.mp4", n, env, "ultrafast"),
                "ffmpeg_ultrafast": ffmpeg_run(ffmpeg, urls, tmp / "fu.mp4", n, env, "ultrafast"),
                "ffmpeg_veryfast": ffmpeg_run(ffmpeg, urls, tmp / "fv.mp4", n, env, "veryfast"),
            }
            report["ratio_cpu_per_frame"] = {
                "camctl (ladder) / ffmpeg ultrafast": per_frame(runs["camctl"], runs["ffmpeg_ultrafast"]),
                "camctl ultrafast / ffmpeg ultrafast": per_frame(runs["camctl_ultrafast"], runs["ffmpeg_ultrafast"]),
                "camctl (ladder) / ffmpeg veryfast": per_frame(runs["camctl"], runs["ffmpeg_veryfast"]),
            }
        if args.hogs:
            with Hog(args.hogs):
                report[f"squeeze_{args.hogs}_core_hog"] = {
                    "camctl": camctl_run(config, tmp / "sc.mp4", n, env),
                    "ffmpeg_veryfast": ffmpeg_run(ffmpeg, urls, tmp / "sf.mp4", n, env, "veryfast"),
                }
        report["fake_cameras_cpu_percent"] = round((cpu_of(cams.proc.pid) - generator_from)
                                                   / (time.monotonic() - started) * 100, 1)  # fmt: skip
        if args.squeeze_only:
            print(json.dumps(report, indent=2))
            return
        cams.stop()
        stamped = stack.enter_context(FakeCameras(count=1, size=args.size, fps=30, bitrate=2048, gop=30, stamp=True))
        others = stack.enter_context(FakeCameras(count=3, size=args.size, fps=30, bitrate=2048, gop=30))
        urls = [stamped.url("cam1"), *others.urls.values()]  # the top-left tile carries the stamp
        config.write_text("cameras:\n" + "".join(f"  cam_{i}: '{u}'\n" for i, u in enumerate(urls, 1)))
        report["latency_camctl_grid"] = stream_latency(camctl_grid(config, "-", args.latency_seconds), env,
                                                       args.latency_seconds)  # fmt: skip
        ts = ["-f", "mpegts", "-flush_packets", "1", "-"]
        report["latency_ffmpeg_xstack"] = stream_latency(ffmpeg_grid(ffmpeg, urls, ts, args.latency_seconds), env,
                                                         args.latency_seconds)  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
