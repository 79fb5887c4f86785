#!/usr/bin/env python3
"""Motion found by run-all itself: what it costs on 4 cameras' sub streams analysed at 5 fps.

1. The detector alone: MotionDetector.push on 640x360 luma planes (as the decoder hands them),
   ms per picture, and what 4 cameras x 5 fps make of it (% of one core).
2. run-all on 4 fake cameras (1080p30 main + 640x360@15 sub, replayed loops), analysis_fps 5,
   `motion.detect: off` then `on`: the process tree's CPU over the same window, side by side.

    .venv/bin/python scripts/bench_motion.py --seconds 40
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_roles import run_all_cpu

from camctl.analysis.motion import MotionDetector
from tests.harness import FakeCameras, NatsServer


def detector_alone(pictures: int = 2000) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    scene = rng.integers(40, 200, (360, 640), dtype=np.uint8)  # a still scene, with sensor noise
    frames = [np.clip(scene + rng.integers(-6, 7, scene.shape), 0, 255).astype(np.uint8) for _ in range(8)]
    for n, frame in enumerate(frames[4:]):  # and now and then a bright box moving across it
        frame[100:160, 80 * n : 80 * n + 60] = 250
    detector = MotionDetector("cam_1")
    started = time.process_time()
    for n in range(pictures):
        detector.push(frames[n % 8], n / 5, n)
    per_picture = (time.process_time() - started) / pictures * 1000
    return {"ms_per_picture_640x360": round(per_picture, 3),
            "percent_of_a_core_4_cameras_5_fps": round(per_picture * 4 * 5 / 10, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40)
    args = parser.parse_args()
    report: dict[str, Any] = {"detector": detector_alone()}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        cams = FakeCameras(count=4, size="1920x1080", fps=30, bitrate=2048, gop=30, sub="640x360@15")
        stack.callback(cams.stop)
        cams.start(timeout=900)
        nats = stack.enter_context(NatsServer())
        for detect in ("off", "on"):
            print(f"== motion.detect: {detect}", file=sys.stderr, flush=True)
            settings = f"analysis_fps: 5\n    motion: {{detect: '{detect}'}}"
            report[f"run-all, motion {detect}"] = run_all_cpu(cams, 4, True, settings, args.seconds, tmp, nats.url)
    off = report["run-all, motion off"]["cpu_percent_of_one_core"]
    on = report["run-all, motion on"]["cpu_percent_of_one_core"]
    report["motion_cost_percent_of_one_core"] = round(on - off, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
