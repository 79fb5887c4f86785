"""The encoder/decoder registry: every candidate really opened at 1080p, with a reason when not."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.conftest import Result


def test_probe_encoders_reports_libx264_and_explains_the_others(camctl: Callable[..., Result]) -> None:
    result = camctl("probe", "--encoders", "--json")
    assert result.returncode == 0, result.stderr
    checks = {(c["name"], c["kind"]): c for c in json.loads(result.text)}
    x264 = checks[("libx264", "encoder")]
    assert x264["available"] and x264["fps_1080p"] > 1 and not x264["hardware"]
    for name in ("h264_nvenc", "hevc_nvenc", "h264_v4l2m2m", "h264_vaapi"):
        check = checks[(name, "encoder")]
        assert check["hardware"]
        assert check["available"] or check["reason"], f"{name}: unavailable without a reason"
    nvenc = checks[("h264_nvenc", "encoder")]
    if not nvenc["available"]:  # this box has no NVIDIA encoder: say so in words
        assert "NVIDIA" in nvenc["reason"] or "FFmpeg build" in nvenc["reason"]
    assert checks[("h264", "decoder")]["available"] and checks[("hevc", "decoder")]["available"]
    table = camctl("probe", "--encoders")
    assert table.returncode == 0 and "libx264" in table.text and "available" in table.text
