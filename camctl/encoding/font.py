"""A 5x7 bitmap font drawn straight into a picture's luma plane.

PyAV's FFmpeg has no drawtext filter (no FreeType), and a camera name plus a clock need no more
than capitals, digits and a few signs. Text is drawn white on a darkened box so it reads on any
picture; masks are cached per string, so the clock costs one render per second.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import numpy as np
import numpy.typing as npt

GLYPHS: dict[str, tuple[str, ...]] = {
    "0": (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("####.", "....#", "....#", ".###.", "....#", "....#", "####."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": (".###.", "#....", "#....", "####.", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    "8": (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    "9": (".###.", "#...#", "#...#", ".####", "....#", "....#", ".###."),
    "A": (".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "B": ("####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."),
    "C": (".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."),
    "D": ("####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."),
    "E": ("#####", "#....", "#....", "####.", "#....", "#....", "#####"),
    "F": ("#####", "#....", "#....", "####.", "#....", "#....", "#...."),
    "G": (".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"),
    "H": ("#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "I": (".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "J": ("..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."),
    "K": ("#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"),
    "L": ("#....", "#....", "#....", "#....", "#....", "#....", "#####"),
    "M": ("#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"),
    "N": ("#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"),
    "O": (".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "P": ("####.", "#...#", "#...#", "####.", "#....", "#....", "#...."),
    "Q": (".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"),
    "R": ("####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"),
    "S": (".####", "#....", "#....", ".###.", "....#", "....#", "####."),
    "T": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."),
    "U": ("#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "V": ("#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."),
    "W": ("#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."),
    "X": ("#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"),
    "Y": ("#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."),
    "Z": ("#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"),
    " ": (".....",) * 7,
    ":": (".....", "..#..", "..#..", ".....", "..#..", "..#..", "....."),
    "-": (".....", ".....", ".....", "#####", ".....", ".....", "....."),
    "_": (".....", ".....", ".....", ".....", ".....", ".....", "#####"),
    ".": (".....", ".....", ".....", ".....", ".....", ".##..", ".##.."),
    "/": ("....#", "....#", "...#.", "..#..", ".#...", "#....", "#...."),
    "(": ("...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."),
    ")": (".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."),
    "?": (".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."),
}
WIDTH, HEIGHT = 5, 7  # a glyph; one blank column between glyphs, a one-pixel margin around the text


def _plain(text: str) -> str:
    """Capitals without accents ("Portão" -> "PORTAO"); what the font lacks becomes '?'."""
    stripped = "".join(c for c in unicodedata.normalize("NFKD", text.upper()) if not unicodedata.combining(c))
    return "".join(c if c in GLYPHS else "?" for c in stripped)


@lru_cache(maxsize=256)
def text_mask(text: str, scale: int) -> npt.NDArray[np.bool_]:
    """The text as a boolean mask, `scale` pixels per font pixel, with a margin of one font pixel."""
    chars = _plain(text)
    mask = np.zeros((HEIGHT + 2, max(1, len(chars)) * (WIDTH + 1) + 1), dtype=np.bool_)
    for i, char in enumerate(chars):
        glyph = np.array([[c == "#" for c in row] for row in GLYPHS[char]], dtype=np.bool_)
        mask[1 : 1 + HEIGHT, 1 + i * (WIDTH + 1) : 1 + i * (WIDTH + 1) + WIDTH] = glyph
    return np.kron(mask, np.ones((scale, scale), dtype=np.bool_)).astype(np.bool_)


def draw_text(
    luma: npt.NDArray[np.uint8], chroma: tuple[npt.NDArray[np.uint8], ...], text: str, x: int, y: int, scale: int
) -> None:
    """White text on a dark grey box at (x, y) (even) of a yuv420p picture, clipped to it."""
    mask = text_mask(text, scale)
    h = min(mask.shape[0], luma.shape[0] - y)
    w = min(mask.shape[1], luma.shape[1] - x)
    if h <= 0 or w <= 0:
        return
    area = luma[y : y + h, x : x + w]
    area >>= 2  # darken: the text stays readable on a white wall
    area[mask[:h, :w]] = 235  # video white
    for plane in chroma:  # grey, not a dark shade of whatever colour was there
        plane[y // 2 : (y + h + 1) // 2, x // 2 : (x + w + 1) // 2] = 128
