"""What a grid's `--output` names: a file, an RTSP server, an HLS folder or stdout.

Kept apart from the muxing (and from PyAV, and from the disk) so the config can check
`grid.output` when it loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from camctl.errors import UsageError
from camctl.rules.mp4 import MOVFLAGS
from camctl.secrets import mask_url

HLS_SEGMENT_SECONDS = 2
HLS_SEGMENTS_KEPT = 10
# Every packet handed to the file at once: a full disk then fails the write that hit it (exit 5)
# instead of vanishing in FFmpeg's buffer while the grid reports success.
WRITE_THROUGH = {"flush_packets": "1"}


@dataclass(frozen=True)
class Target:
    url: str  # what FFmpeg opens
    format: str
    options: dict[str, str]
    shown: str  # for messages: credentials masked

    @classmethod
    def parse(cls, text: str) -> Target:
        if text == "-":  # MPEG-TS on stdout, for a pipe: camctl grid -o - | ffplay -
            return cls("pipe:1", "mpegts", {"flush_packets": "1"}, "stdout")
        if text.startswith(("rtsp://", "rtsps://")):
            return cls(text, "rtsp", {"rtsp_transport": "tcp"}, mask_url(text))
        path = Path(text)
        suffix = path.suffix.lower()
        if suffix == ".mp4":  # fragmented: a killed grid still leaves a playable file
            return cls(text, "mp4", {"movflags": MOVFLAGS, "frag_duration": "1000000", **WRITE_THROUGH}, text)
        if suffix == ".mkv":
            return cls(text, "matroska", dict(WRITE_THROUGH), text)
        # By the name alone (the config checks outputs when it loads, without touching the disk): a
        # folder for HLS ends in "/" or has no suffix.
        if suffix == ".m3u8" or text.endswith("/") or not suffix:
            playlist = path if suffix == ".m3u8" else path / "index.m3u8"
            options = {
                "hls_time": str(HLS_SEGMENT_SECONDS),
                "hls_list_size": str(HLS_SEGMENTS_KEPT),
                "hls_flags": "delete_segments+independent_segments",
                "hls_segment_filename": str(playlist.parent / "segment_%06d.ts"),
                **WRITE_THROUGH,
            }
            return cls(str(playlist), "hls", options, str(playlist))
        raise UsageError(f"output {text!r}: use a .mp4 or .mkv file, an rtsp:// URL, or a folder for HLS (ending in /)")
