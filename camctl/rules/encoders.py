"""The video encoders camctl knows, in the order `encoder: auto` tries them (hardware first).

A rule shared by the config (which rejects other names when it loads) and the encoder registry
(which proves each by opening it); kept free of PyAV so the config can ask it.
"""

from __future__ import annotations

ENCODERS = ("h264_nvenc", "hevc_nvenc", "h264_v4l2m2m", "h264_vaapi", "libx264")
# libx264's presets, fastest first; the encoder ladder steps down from "veryfast" under load.
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
