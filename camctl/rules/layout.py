"""Where each camera goes in the grid: 1, 2x1, 2x2 or 3x3 tiles."""

from __future__ import annotations

from dataclasses import dataclass

from camctl.errors import UsageError

MAX_TILES = 9


def grid_size_ok(width: int, height: int) -> bool:
    """Even (4:2:0 chroma) and at least 64 pixels each way."""
    return width % 2 == 0 and height % 2 == 0 and min(width, height) >= 64


@dataclass(frozen=True)
class Tile:
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    columns: int
    rows: int

    @classmethod
    def for_cameras(cls, count: int, width: int, height: int) -> Layout:
        if not 1 <= count <= MAX_TILES:
            raise UsageError(f"a grid holds 1 to {MAX_TILES} cameras, not {count}: name the cameras to show")
        if not grid_size_ok(width, height):
            raise UsageError(f"grid size {width}x{height}: width and height must be even and at least 64")
        columns, rows = (1, 1) if count == 1 else (2, 1) if count == 2 else (2, 2) if count <= 4 else (3, 3)
        return cls(width, height, columns, rows)

    def tile(self, index: int) -> Tile:
        """The tile's rectangle; even offsets and sizes, as 4:2:0 chroma needs."""
        width = self.width // self.columns // 2 * 2
        height = self.height // self.rows // 2 * 2
        column, row = index % self.columns, index // self.columns
        return Tile(column * width, row * height, width, height)


def fit(source_width: int, source_height: int, tile: Tile) -> Tile:
    """The picture scaled into the tile keeping its shape, centred (bars where shapes differ)."""
    scale = min(tile.width / source_width, tile.height / source_height)
    width = max(2, int(source_width * scale) // 2 * 2)
    height = max(2, int(source_height * scale) // 2 * 2)
    return Tile(tile.x + (tile.width - width) // 4 * 2, tile.y + (tile.height - height) // 4 * 2, width, height)


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 1920x1080") from None
    return width, height
