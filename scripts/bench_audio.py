#!/usr/bin/env python3
"""Audio: what keeping a camera's audio costs, and how well it stays in sync, vs the ffmpeg CLI.

One stamped fake camera with audio (default G.711 A-law, 8 kHz mono, as cheap cameras send; its
microphone ticks at every wall-clock second and each video frame carries its capture time) is
recorded at the same time, from the same shared stream, by four recorders:

- camctl record, audio: true (G.711 transcoded to AAC; AAC and Opus would be copied)
- camctl record, audio: false (video only: the baseline of the audio's own cost)
- ffmpeg -c:v copy -c:a aac -f segment (the same work done by the ffmpeg CLI)
- ffmpeg -c:v copy -an -f segment

CPU seconds come from wait4() of each process. For every whole segment the audio/video offset is
measured (tick onsets against stamped frames, tests/audio_helpers.py), and a line fitted through
them gives the drift per hour. Prints JSON.

    .venv/bin/python scripts/bench_audio.py --seconds 120
    .venv/bin/python scripts/bench_audio.py --seconds 3600 --segment 60 --audio aac
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.bench_record import stop_and_measure
from tests.audio_helpers import av_sync_error
from tests.harness import FakeCameras


def camctl_recorder(work: Path, url: str, name: str, audio: bool, segment: int) -> subprocess.Popen[bytes]:
    config = work / f"{name}.yaml"
    config.write_text(
        f"cameras:\n  cam_1: {{url: '{url}', audio: {str(audio).lower()}}}\n"
        f"storage: {{root: '{work / name}', segment_seconds: {segment}, retention: {{min_free: null}}}}\n"
    )
    log = (work / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "camctl", "--config", str(config), "record"], stdout=subprocess.DEVNULL, stderr=log
    )


def ffmpeg_recorder(work: Path, url: str, name: str, audio: bool, segment: int) -> subprocess.Popen[bytes]:
    out = work / name
    out.mkdir()
    audio_args = ["-c:a", "aac", "-b:a", "32k"] if audio else ["-an"]
    argv = ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url, "-c:v", "copy",
            *audio_args, "-f", "segment", "-segment_time", str(segment), "-reset_timestamps", "1",
            str(out / "seg_%05d.mp4")]  # fmt: skip
    log = (work / f"{name}.log").open("wb")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)


def sync_series(files: list[Path]) -> list[tuple[int, float]]:
    """(segment number, audio minus video in ms) for the whole segments (not the first or last)."""
    series = []
    for n, path in enumerate(files[1:-1], start=1):
        try:
            series.append((n, round(av_sync_error(path) * 1000, 1)))
        except (AssertionError, IndexError, ValueError, OSError) as exc:
            print(f"{path.name}: not measured: {exc}", file=sys.stderr)
    return series


def drift_per_hour(series: list[tuple[int, float]], segment: int) -> float | None:
    if len(series) < 3:
        return None
    slope = statistics.linear_regression([n * segment for n, _ in series], [ms for _, ms in series]).slope
    return round(slope * 3600, 1)


def summary(series: list[tuple[int, float]], segment: int) -> dict[str, Any]:
    values = [ms for _, ms in series]
    return {
        "segments_measured": len(values),
        "offset_ms_median": statistics.median(values) if values else None,
        "offset_ms_worst": max(values, key=abs) if values else None,
        "offset_ms_first_last": [values[0], values[-1]] if values else None,
        "drift_ms_per_hour": drift_per_hour(series, segment),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--segment", type=int, default=10)
    parser.add_argument("--audio", default="pcma", choices=["aac", "pcma", "pcmu", "opus"])
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the recordings (printed path)")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("bench_audio: the ffmpeg CLI is needed as the peer (apt-get install ffmpeg)")
    work = Path(tempfile.mkdtemp(prefix="camctl-bench-audio-"))
    with FakeCameras(count=1, size=args.size, fps=args.fps, gop=args.fps, bitrate=1024, stamp=True,
                     audio=args.audio) as cams:  # fmt: skip
        url = cams.url()
        procs = {
            "camctl_audio": camctl_recorder(work, url, "camctl_audio", True, args.segment),
            "camctl_video_only": camctl_recorder(work, url, "camctl_video_only", False, args.segment),
            "ffmpeg_audio": ffmpeg_recorder(work, url, "ffmpeg_audio", True, args.segment),
            "ffmpeg_video_only": ffmpeg_recorder(work, url, "ffmpeg_video_only", False, args.segment),
        }
        time.sleep(args.seconds)  # the measurement window itself
        usage = {name: stop_and_measure(proc, signal.SIGTERM if "camctl" in name else signal.SIGINT)
                 for name, proc in procs.items()}  # fmt: skip
    minutes = args.seconds / 60
    cpu = {name: round(u[0] / minutes, 2) for name, u in usage.items()}  # CPU seconds per minute recorded
    audio_cost = {
        "camctl": round(cpu["camctl_audio"] - cpu["camctl_video_only"], 3),
        "ffmpeg": round(cpu["ffmpeg_audio"] - cpu["ffmpeg_video_only"], 3),
    }
    result = {
        "camera": {"audio": args.audio, "size": args.size, "fps": args.fps},
        "seconds": args.seconds,
        "segment_seconds": args.segment,
        "cpu_seconds_per_minute": cpu,
        "audio_cpu_seconds_per_minute": audio_cost,
        "audio_cpu_percent_of_a_core": {k: round(v / 60 * 100, 2) for k, v in audio_cost.items()},
        "peak_rss_mib": {name: round(u[1], 1) for name, u in usage.items()},
        "sync": {
            "camctl": summary(sync_series(sorted((work / "camctl_audio").rglob("*.mp4"))), args.segment),
            "ffmpeg": summary(sync_series(sorted((work / "ffmpeg_audio").glob("*.mp4"))), args.segment),
        },
    }
    print(json.dumps(result, indent=2))
    if args.keep:
        print(f"recordings kept in {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
