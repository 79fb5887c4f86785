"""The `demo:` camera URL: `demo:?size=1280x720&fps=15&bitrate=1M&gop=30&pattern=testsrc2`.

Parsed without PyAV so that validating a config stays cheap; media/demo.py does the encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from camctl.units import parse_bitrate

PATTERNS = ("testsrc2", "testsrc", "smptehdbars", "smptebars", "rgbtestsrc", "mandelbrot", "life")
_KEYS = ("size", "fps", "bitrate", "gop", "pattern")


@dataclass(frozen=True)
class DemoSpec:
    width: int = 1280
    height: int = 720
    fps: int = 15
    bitrate: int = 1_000_000  # bits per second
    gop: int = 0  # frames between keyframes; 0 means two seconds
    pattern: str = "testsrc2"

    @property
    def keyframe_interval(self) -> int:
        return self.gop or 2 * self.fps


def parse_demo_url(url: str) -> DemoSpec:
    """Raises ValueError with a message that names the bad parameter."""
    parts = urlsplit(url)
    if parts.scheme != "demo" or parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"bad demo URL {url!r} (expected demo: or demo:?size=1280x720&fps=15)")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(params) - set(_KEYS))
    if unknown:
        raise ValueError(f"unknown demo parameter {unknown[0]!r} (known: {', '.join(_KEYS)})")
    spec = DemoSpec()
    width, height, fps, gop = spec.width, spec.height, spec.fps, spec.gop
    if "size" in params:
        w, sep, h = params["size"].lower().partition("x")
        if not (sep and w.isdigit() and h.isdigit()):
            raise ValueError(f"bad demo size {params['size']!r} (expected WIDTHxHEIGHT)")
        width, height = int(w), int(h)
        if not (16 <= width <= 4096 and 16 <= height <= 2304) or width % 2 or height % 2:
            raise ValueError(f"bad demo size {params['size']!r} (even numbers, 16x16 to 4096x2304)")
    if "fps" in params:
        if not params["fps"].isdigit() or not 1 <= int(params["fps"]) <= 60:
            raise ValueError(f"bad demo fps {params['fps']!r} (1 to 60)")
        fps = int(params["fps"])
    if "gop" in params:
        if not params["gop"].isdigit() or not 1 <= int(params["gop"]) <= 600:
            raise ValueError(f"bad demo gop {params['gop']!r} (1 to 600 frames)")
        gop = int(params["gop"])
    bitrate = parse_bitrate(params["bitrate"]) if "bitrate" in params else spec.bitrate
    pattern = params.get("pattern", spec.pattern)
    if pattern not in PATTERNS:
        raise ValueError(f"bad demo pattern {pattern!r} (one of {', '.join(PATTERNS)})")
    return DemoSpec(width, height, fps, bitrate, gop, pattern)
