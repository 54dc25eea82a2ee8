"""torch.compile where it pays for itself, with a clean fallback.

Inductor fuses the elementwise work around the matrix products (bias, ReLU, softplus, the
per-image sums) into single passes over memory. Compiling costs seconds (torch caches the
result on disk for later processes), so callers compile only work that is large enough to
repay it. AELAB_COMPILE=0 turns compiling off; where it fails (no C compiler, a platform
inductor does not support), one warning is printed and the eager function is used from then on.
Compiled and eager results agree to float32 rounding (sums are reassociated); each is
reproducible for a fixed seed.
"""

from __future__ import annotations

import functools
import os
import warnings

import torch

ENV = "AELAB_COMPILE"


def enabled() -> bool:
    return os.environ.get(ENV, "1") != "0" and hasattr(torch, "compile")


def compiled(fn):
    """`fn` compiled on first call (static shapes; a new shape compiles again), else `fn`."""
    current = None

    @functools.wraps(fn)
    def call(*args, **kwargs):
        nonlocal current
        if current is None:
            current = torch.compile(fn, dynamic=False) if enabled() else fn
        if current is not fn:
            try:
                return current(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - any compiler failure: run eagerly instead
                reason = (str(e).strip().splitlines() or [""])[0][:200]
                warnings.warn(f"torch.compile failed ({type(e).__name__}: {reason}); "
                              f"running {fn.__qualname__} eagerly (set {ENV}=0 to skip compiling)",
                              stacklevel=2)
                current = fn
        return fn(*args, **kwargs)

    return call
