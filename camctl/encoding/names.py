"""The video encoders camctl knows, in the order `encoder: auto` tries them (hardware first).

A rule shared by the config (which rejects other names when it loads) and the encoder registry
(which proves each by opening it); kept free of PyAV so the config can ask it.
"""

from __future__ import annotations

ENCODERS = ("h264_nvenc", "hevc_nvenc", "h264_v4l2m2m", "h264_vaapi", "libx264")
