"""Why a hardware codec did not open, in words a person can act on."""

from __future__ import annotations

import av
import av.error


def why_not(name: str, exc: BaseException) -> str:
    """One line a person can act on."""
    if isinstance(exc, ValueError) and not isinstance(exc, av.error.FFmpegError):  # av's UnknownCodecError
        return "not in this FFmpeg build"
    if "nvenc" in name or "cuvid" in name:
        if isinstance(exc, (PermissionError, av.error.PermissionError)):
            return "no NVIDIA GPU with this engine here (no CUDA device, or a GPU without NVENC/NVDEC)"
        return f"NVIDIA driver refused it ({_strerror(exc)})"
    if "v4l2m2m" in name:
        return "no V4L2 memory-to-memory device (/dev/video*) that does this"
    if "vaapi" in name:
        return "no VAAPI device (/dev/dri/renderD*)"
    return _strerror(exc)


def _strerror(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or type(exc).__name__).rstrip(".").lower()
