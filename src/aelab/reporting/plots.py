"""Drawing: matplotlib figures of images, codes and curves, saved as PNG.

Only drawing lives here; what to draw is decided in figures.py. Every function returns a
matplotlib Figure; `save` writes it atomically and closes it.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Collection
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from aelab.files import write_atomic
from aelab.reporting.images import grid

DPI = 100
# Applied around each drawing (matplotlib.rc_context), never to the process's own settings;
# figures are plain matplotlib.figure.Figure objects, so no backend is chosen or switched.
STYLE = {"font.size": 9, "axes.titlesize": 10, "figure.dpi": DPI, "savefig.dpi": DPI}


def styled(draw):
    """Run a drawing function under STYLE."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)
    return wrapper


def subplots(nrows: int = 1, ncols: int = 1, *, figsize, squeeze: bool = True):
    """A new Figure and its axes, as pyplot.subplots would give them, without pyplot."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def cmap(name: str):
    return matplotlib.colormaps[name]


@styled
def save(fig: Figure, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", facecolor="white")
    write_atomic(Path(path), buf.getvalue())
    return Path(path)


def _show(ax, img: np.ndarray, **kw) -> None:
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest", **kw)


def _canvas(images: torch.Tensor, nrow: int, pad: int) -> np.ndarray:
    return np.asarray(grid(images, nrow=nrow, pad=pad, scale=1))


WIDE = 12.0  # inches: image figures grow with their images up to this width


def _cell(base: float, height: int, columns: int) -> float:
    """Inches per image cell: `base` (for 28x28 digits), or up to twice the image's own pixels
    for larger images while the figure stays within WIDE, so that photos are not shrunk."""
    return max(base, min(2 * height / DPI, WIDE / columns))


@styled
def image_rows(rows: list[torch.Tensor], row_labels: list[str], title: str,
               col_labels: list[str] | None = None, cell: float = 0.62) -> Figure:
    """Rows of images (each (N, C, H, W) in [0, 1], same N), a label left of each row and
    optionally one above each column."""
    n = rows[0].shape[0]
    cell = _cell(cell, rows[0].shape[-2], n)
    fig, axes = subplots(len(rows), 1, figsize=(max(4.0, n * cell + 1.2), len(rows) * cell * 1.1 + 0.5),
                             squeeze=False)
    for ax, images, label in zip(axes[:, 0], rows, row_labels):
        canvas = _canvas(images, n, pad=2)
        _show(ax, canvas)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        for side in ax.spines.values():
            side.set_visible(False)
    if col_labels:
        h, w = rows[0].shape[-2:]
        axes[0, 0].set_xticks([2 + i * (w + 2) + w / 2 for i in range(n)], col_labels)
        axes[0, 0].xaxis.tick_top()
        axes[0, 0].tick_params(length=0)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@styled
def image_grid(images: torch.Tensor, nrow: int, title: str, *, row_labels: list[str] | None = None,
               col_labels: list[str] | None = None, axes: tuple[str, str] = ("", ""), cell: float = 0.5) -> Figure:
    """A grid of images, `nrow` per row; labelled rows and columns where given (e.g. z values,
    or one digit per row), and the axes (x, y) named."""
    n, _, h, w = images.shape
    rows = math.ceil(n / nrow)
    pad = 1 if (row_labels or col_labels) else 2
    canvas = _canvas(images, nrow, pad)
    cell = _cell(cell, h, nrow)
    fig, ax = subplots(figsize=(nrow * cell + 1.3, rows * cell + 0.9))
    _show(ax, canvas)
    centre = lambda i, size: pad + i * (size + pad) + size / 2  # noqa: E731
    ax.set_xticks([centre(i, w) for i in range(nrow)] if col_labels else [], col_labels or [])
    ax.set_yticks([centre(i, h) for i in range(rows)] if row_labels else [], row_labels or [])
    ax.tick_params(length=0)
    ax.set_xlabel(axes[0]), ax.set_ylabel(axes[1])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


@styled
def scatter(points: np.ndarray, labels: np.ndarray, title: str, xlabel: str, ylabel: str,
            class_names: list[str]) -> Figure:
    """2-D points coloured by class, with a legend. Points are drawn in a fixed random order,
    so that no class hides the others by being drawn last."""
    fig, ax = subplots(figsize=(5.6, 4.6))
    colors = cmap("tab10")(np.arange(len(class_names)) % 10)
    order = np.random.default_rng(0).permutation(len(points))
    ax.scatter(points[order, 0], points[order, 1], s=3, alpha=0.6, c=colors[labels[order]], rasterized=True)
    if len(class_names) > 1:  # one class (an image folder without subfolders): nothing to tell apart
        handles = [Line2D([], [], marker="o", linestyle="", color=colors[c], label=name)
                   for c, name in enumerate(class_names)]
        ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_xlabel(xlabel), ax.set_ylabel(ylabel), ax.set_title(title)
    fig.tight_layout()
    return fig


@styled
def curves(panels: list[tuple[str, str, dict[str, tuple[list, list]]]], title: str,
           colors: dict[str, object] | None = None, shared_legend: bool = False,
           dashed: Collection[str] | None = None, xlabel: str = "epoch") -> Figure:
    """Side-by-side panels; each is (panel title, y-axis label, {line label: (x, y)}). The
    lines labelled in `dashed` are dashed (default: those whose label starts with "val");
    `colors` fixes a line's colour in every panel. With `shared_legend`, one legend for all
    panels sits below them (many runs), else each panel has its own."""
    fig, axes = subplots(1, len(panels), figsize=(3.6 * len(panels) + 0.4, 3.3), squeeze=False)
    handles: dict[str, object] = {}
    for ax, (name, ylabel, lines) in zip(axes[0], panels):
        for label, (x, y) in lines.items():
            (line,) = ax.plot(x, y, marker="o" if len(x) <= 30 else None, ms=3, label=label,
                              linestyle="--" if (label.startswith("val") if dashed is None else label in dashed) else "-",
                              color=(colors or {}).get(label))
            handles.setdefault(label, line)
        ax.set_title(name), ax.set_xlabel(xlabel), ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if lines and not shared_legend:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    if shared_legend and handles:
        ncol = min(len(handles), 4)
        rows = -(-len(handles) // ncol)
        legend_h = 0.2 * rows + 0.05  # inches
        fig.set_figheight(3.3 + legend_h)
        fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=ncol, fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, 0))
        fig.tight_layout(rect=(0, legend_h / fig.get_figheight(), 1, 1))
    else:
        fig.tight_layout()
    return fig


def palette(names: list[str]) -> dict[str, object]:
    """One colour per name, fixed by its position."""
    colours = cmap("tab10" if len(names) <= 10 else "tab20")
    return {n: colours(i % colours.N) for i, n in enumerate(names)}


def colormap(values: torch.Tensor, name: str = "viridis") -> torch.Tensor:
    """Values in [0, 1] of any shape (...) -> colours (..., 3, H, W) for (..., H, W) input."""
    rgb = cmap(name)(values.detach().cpu().numpy())[..., :3]  # (..., H, W, 3)
    return torch.from_numpy(np.moveaxis(rgb, -1, -3)).float()


@styled
def xy(lines: dict[str, tuple[list, list]], title: str, xlabel: str, ylabel: str) -> Figure:
    """Lines (one per label) on one pair of axes, with a legend."""
    fig, ax = subplots(figsize=(5.4, 3.6))
    colors = palette(list(lines))
    for label, (x, y) in lines.items():
        ax.plot(x, y, marker="o", ms=3, label=label, color=colors[label])
    ax.set_title(title), ax.set_xlabel(xlabel), ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
