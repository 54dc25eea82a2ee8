"""Writing images: a PNG grid for people, a .npy array for programs."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aelab.errors import AelabError
from aelab.files import write_atomic


def grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2, scale: int = 2) -> Image.Image:
    """(N, C, H, W) in [0, 1] -> one image, `nrow` per row, on a white background."""
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    canvas = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, np.uint8)
    pixels = (images.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    pixels = pixels.permute(0, 2, 3, 1).numpy()
    for i in range(n):
        r, k = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        canvas[y:y + h, x:x + w] = pixels[i]
    img = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img


def save_images(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """A PNG grid (`nrow` per row), or with a `.npy` name the raw (N, H, W) (grey) or
    (N, H, W, C) floats in [0, 1]."""
    path = Path(path)
    if path.suffix == ".npy":
        arr = images.detach().float().cpu().clamp(0, 1).permute(0, 2, 3, 1).numpy()
        arr = arr[..., 0] if arr.shape[-1] == 1 else arr
        buf = io.BytesIO()
        np.save(buf, arr)
        write_atomic(path, buf.getvalue())
    elif path.suffix.lower() == ".png":
        buf = io.BytesIO()
        grid(images, nrow).save(buf, format="PNG")
        write_atomic(path, buf.getvalue())
    else:
        raise AelabError(f"{path}: unknown image format; use .png or .npy")
    return path
