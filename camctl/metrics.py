"""Prometheus text exposition (format 0.0.4): what `/metrics` says, written once.

A worker (or `camctl ingest`) exposes its cameras' gauges and counters, the camera-to-event
latency histogram and the bus counters; under run-all the front merges the workers' texts (each
family once, every sample labelled with its camera) and adds the supervisor's own counters.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000)

# (status key, metric, type): one sample per camera from its status payload
CAMERA_METRICS = (
    ("online", "camctl_camera_online", "gauge", "1 when the camera delivers frames."),
    ("fps", "camctl_camera_fps", "gauge", None),
    ("bitrate_kbps", "camctl_camera_bitrate_kbps", "gauge", None),
    ("dropped_frames", "camctl_camera_dropped_frames_total", "counter", None),
    ("reconnects", "camctl_camera_reconnects_total", "counter", None),
    ("frames", "camctl_camera_frames_total", "counter", None),
    ("transcode_bitrate_kbps", "camctl_transcode_bitrate_kbps", "gauge", None),  # transcoded cameras only
    ("transcode_fps", "camctl_transcode_fps", "gauge", "The frame rate recorded, on the encoder ladder's rung."),
    ("transcode_ladder_steps", "camctl_transcode_ladder_steps_total", "counter", "Encoder ladder steps."),
    ("viewers", "camctl_live_viewers", "gauge", "Live viewers (live.ws, live.mp4; HLS players as one) of the camera."),
)


@dataclass
class LatencyHistogram:
    """Camera-to-event latency (frame arrival to publish)."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    total_ms: float = 0.0
    n: int = 0

    def observe(self, ms: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS_MS, ms)] += 1  # the first bucket it fits (le)
        self.total_ms += ms
        self.n += 1


@dataclass(frozen=True)
class Family:
    """One metric family: its HELP (optional), TYPE and sample lines."""

    name: str
    kind: str  # gauge, counter, histogram
    samples: tuple[str, ...]
    help: str | None = None

    def lines(self) -> list[str]:
        head = [f"# HELP {self.name} {self.help}"] if self.help else []
        return [*head, f"# TYPE {self.name} {self.kind}", *self.samples]


def exposition(families: Iterable[Family]) -> str:
    return "\n".join(line for family in families for line in family.lines()) + "\n"


def labels(values: Mapping[str, str]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in values.items())
    return f"{{{inner}}}" if inner else ""


def camera_families(statuses: Sequence[Mapping[str, Any]], node: str) -> list[Family]:
    """The cameras' gauges and counters, from their status payloads."""
    families = []
    for key, name, kind, text in CAMERA_METRICS:
        samples = tuple(
            f"{name}{labels({'camera': s['camera_id'], 'node': node})} {float(s[key] or 0):g}"
            for s in statuses
            if key in s
        )
        families.append(Family(name, kind, samples, text))
    return families


# (stream status key, metric, type, help): one sample per opened stream of each camera
STREAM_METRICS = (
    ("online", "camctl_stream_online", "gauge", "1 when the camera's stream delivers pictures."),
    ("fps", "camctl_stream_fps", "gauge", None),
    ("bitrate_kbps", "camctl_stream_bitrate_kbps", "gauge", None),
    ("decoded_frames", "camctl_stream_decoded_frames_total", "counter", "Pictures decoded (none while unused)."),
)
DECODE_MODES = ("full", "keyframes", "off")


def stream_families(statuses: Sequence[Mapping[str, Any]], node: str) -> list[Family]:
    """Per stream (main, sub) of each camera: its rate, and how it is decoded now (a gauge per mode,
    1 for the current one, as Prometheus says states)."""
    streams = [({"camera": s["camera_id"], "stream": name, "node": node}, info)
               for s in statuses for name, info in (s.get("streams") or {}).items()]  # fmt: skip
    families = [
        Family(name, kind, tuple(f"{name}{labels(tags)} {float(info.get(key) or 0):g}" for tags, info in streams), text)
        for key, name, kind, text in STREAM_METRICS
    ]
    decode = "camctl_stream_decode"
    samples = tuple(f"{decode}{labels({**tags, 'mode': mode})} {int(info.get('decode') == mode)}"
                    for tags, info in streams for mode in DECODE_MODES)  # fmt: skip
    families.append(Family(decode, "gauge", samples, "1 for how the stream is decoded now: full, keyframes or off."))
    return families


def latency_family(histogram: LatencyHistogram) -> Family:
    name = "camctl_event_latency_ms"
    samples, cumulative = [], 0
    for bound, count in zip((*LATENCY_BUCKETS_MS, "+Inf"), histogram.counts, strict=True):
        cumulative += count
        samples.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
    samples += [f"{name}_sum {histogram.total_ms:.3f}", f"{name}_count {histogram.n}"]
    return Family(name, "histogram", tuple(samples), "Camera frame arrival to NATS publish.")


def bus_families(connected: bool, published: int, dropped: int) -> list[Family]:
    return [
        Family(
            "camctl_nats_connected", "gauge", (f"camctl_nats_connected {int(connected)}",), "1 when events reach NATS."
        ),
        Family("camctl_events_published_total", "counter", (f"camctl_events_published_total {published}",)),
        Family("camctl_events_dropped_total", "counter", (f"camctl_events_dropped_total {dropped}",)),
    ]


def counter_family(name: str, per_camera: Mapping[str, int], text: str | None = None) -> Family:
    samples = tuple(f"{name}{labels({'camera': camera})} {value}" for camera, value in per_camera.items())
    return Family(name, "counter", samples, text)


def merge_metrics(texts: list[tuple[str, str]]) -> str:
    """Prometheus text from several workers: each family once (HELP/TYPE, then its samples from
    every worker), every sample labelled with its camera."""
    meta: dict[str, list[str]] = {}  # family -> its HELP/TYPE lines, in order of first appearance
    samples: dict[str, list[str]] = {}
    for camera, text in texts:
        for line in text.splitlines():
            if line.startswith("#"):
                parts = line.split()
                if len(parts) >= 3 and line not in meta.setdefault(parts[2], []):
                    meta[parts[2]].append(line)
                continue
            if not line.strip():
                continue
            name = line.split("{")[0].split()[0]
            family = max((f for f in meta if name.startswith(f)), key=len, default=name)
            samples.setdefault(family, []).append(_with_camera(line, camera))
    out: list[str] = []
    for family in [*meta, *(f for f in samples if f not in meta)]:
        out += meta.get(family, []) + samples.get(family, [])
    return "\n".join(out) + "\n"


def _with_camera(line: str, camera: str) -> str:
    if 'camera="' in line:
        return line
    label = f'camera="{_escape(camera)}"'
    return line.replace("{", f"{{{label},", 1) if "{" in line else line.replace(" ", f"{{{label}}} ", 1)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
