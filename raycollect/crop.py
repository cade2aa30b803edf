"""A silhouette cut to its box (raycollect/labels.py's amodal masks, their .amodal.npz file).

Silhouettes travel as crops from the page's packed planes to the file: an object fills a few
percent of a frame, and a whole-frame mask per object costs the worker a millisecond each.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def box(hit: np.ndarray) -> list[int] | None:
    """[x, y, w, h] tight on a bool mask's pixels, None if it has none."""
    rows = np.flatnonzero(hit.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(hit.any(axis=0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


class Crop(NamedTuple):
    """A bool silhouette cut to its box: pixel (x + c, y + r) is bits[r, c]."""

    x: int
    y: int
    bits: np.ndarray

    @classmethod
    def of(cls, hit: np.ndarray, x: int = 0, y: int = 0) -> "Crop":
        """The tight crop of a bool array whose pixel (0, 0) is (x, y); empty: a 0 x 0 one."""
        b = box(hit)
        if b is None:
            return cls(0, 0, np.zeros((0, 0), bool))
        return cls(x + b[0], y + b[1], hit[b[1]:b[1] + b[3], b[0]:b[0] + b[2]])

    @property
    def box(self) -> list[int] | None:
        h, w = self.bits.shape
        return [self.x, self.y, w, h] if h and w else None

    def full(self, h: int, w: int) -> np.ndarray:
        out = np.zeros((h, w), bool)
        bh, bw = self.bits.shape
        out[self.y:self.y + bh, self.x:self.x + bw] = self.bits
        return out


def union(parts: list[tuple[int, int, np.ndarray]]) -> Crop:
    """The OR of bool arrays placed at (x, y), on their common box."""
    parts = [p for p in parts if p[2].size]
    if not parts:
        return Crop(0, 0, np.zeros((0, 0), bool))
    x0, y0 = min(p[0] for p in parts), min(p[1] for p in parts)
    x1 = max(p[0] + p[2].shape[1] for p in parts)
    y1 = max(p[1] + p[2].shape[0] for p in parts)
    out = np.zeros((y1 - y0, x1 - x0), bool)
    for x, y, a in parts:
        out[y - y0:y - y0 + a.shape[0], x - x0:x - x0 + a.shape[1]] |= a
    return Crop.of(out, x0, y0)
