"""Span logs beside the footage (`<root>/<cam>/motion.jsonl`, `marks.jsonl`): what moved and what
someone marked, read back as (start, end) spans for retention's tiers and the timeline."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from camctl.storage.files import json_lines

Spans = dict[str, list[tuple[float, float]]]  # camera id -> (start, end), sorted


def kept_spans(root: Path, cameras: Iterable[str]) -> tuple[Spans, Spans]:
    """Each camera's motion (motion.jsonl) and marks (marks.jsonl), as (start, end) spans."""
    motion: Spans = {}
    marks: Spans = {}
    for camera in cameras:
        for name, found in (("motion.jsonl", motion), ("marks.jsonl", marks)):
            found[camera] = sorted(_spans_in(root / camera / name))
    return motion, marks


def _spans_in(path: Path) -> list[tuple[float, float]]:
    return [(entry["start"], entry["end"]) for entry in read_spans(path)]


def read_spans(path: Path) -> list[dict[str, Any]]:
    """The lines of a span log beside the footage (motion.jsonl, marks.jsonl), each with float
    start and end, oldest first; lines torn by a crash are skipped, a missing file is none."""
    spans = []
    for entry in json_lines(path):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            spans.append({**entry, "start": float(entry["start"]), "end": float(entry["end"])})
    return sorted(spans, key=lambda e: e["start"])
