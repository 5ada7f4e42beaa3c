"""The geometry of a grid city (:class:`GridSpec`): cell squares, neighbours, arithmetic locate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GridSpec"]


@dataclass(frozen=True)
class GridSpec:
    """Geometry of a grid city: cell ``(row, col)`` spans ``x0 + col*cell_m ..`` (metres).

    Cells are numbered row-major from the south-west corner: position ``row * nx + col``.
    """

    x0: float
    y0: float
    cell_m: float
    nx: int
    ny: int
    block_cells: int
    street_blocks: int

    def to_json(self) -> dict:
        return dict(
            x0=self.x0, y0=self.y0, cell_m=self.cell_m, nx=self.nx, ny=self.ny,
            block_cells=self.block_cells, street_blocks=self.street_blocks,
        )

    def polygons(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cell squares (CCW from the south-west corner), offsets and edge neighbours."""
        n = self.nx * self.ny
        pos = np.arange(n, dtype=np.int64)
        row, col = pos // self.nx, pos % self.nx
        xa = self.x0 + col * self.cell_m
        xb = self.x0 + (col + 1) * self.cell_m
        ya = self.y0 + row * self.cell_m
        yb = self.y0 + (row + 1) * self.cell_m
        xy = np.empty((n, 4, 2))
        xy[:, 0, 0], xy[:, 0, 1] = xa, ya
        xy[:, 1, 0], xy[:, 1, 1] = xb, ya
        xy[:, 2, 0], xy[:, 2, 1] = xb, yb
        xy[:, 3, 0], xy[:, 3, 1] = xa, yb
        nbr = np.empty((n, 4), dtype=np.int64)
        nbr[:, 0] = np.where(row > 0, pos - self.nx, -1)  # bottom edge
        nbr[:, 1] = np.where(col < self.nx - 1, pos + 1, -1)  # right
        nbr[:, 2] = np.where(row < self.ny - 1, pos + self.nx, -1)  # top
        nbr[:, 3] = np.where(col > 0, pos - 1, -1)  # left
        return xy.reshape(-1, 2), np.arange(0, 4 * n + 1, 4, dtype=np.int64), nbr.ravel()

    def locate_xy(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Cell position of each point (half-open cells), -1 outside; direct arithmetic."""
        with np.errstate(invalid="ignore"):
            fc = np.floor((x - self.x0) / self.cell_m)
            fr = np.floor((y - self.y0) / self.cell_m)
            ok = (fc >= 0) & (fc < self.nx) & (fr >= 0) & (fr < self.ny)
        out = np.full(np.shape(x), -1, dtype=np.int64)
        out[ok] = fr[ok].astype(np.int64) * self.nx + fc[ok].astype(np.int64)
        return out
