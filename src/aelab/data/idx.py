"""IDX files (the MNIST format, http://yann.lecun.com/exdb/mnist/), plain or gzipped.

Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then
one big-endian uint32 per dimension. Everything is checked before a byte of data is used.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from aelab.errors import AelabError

UBYTE = 0x08


def read(path: str | Path, ndim: int) -> np.ndarray:
    """The uint8 array stored in `path`, which must have `ndim` dimensions."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise AelabError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise AelabError(f"{path}: cannot read: {e}") from None
    if len(raw) < 4:
        raise AelabError(f"{path}: truncated: {len(raw)} bytes, shorter than an IDX header")
    zero, dtype, dims = struct.unpack(">HBB", raw[:4])
    magic = int.from_bytes(raw[:4], "big")
    if zero != 0 or dtype != UBYTE or dims != ndim:
        raise AelabError(
            f"{path}: wrong magic number 0x{magic:08x}; expected 0x{(UBYTE << 8) | ndim:08x} "
            f"(unsigned bytes, {ndim} dimension{'s' * (ndim > 1)})"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise AelabError(f"{path}: truncated: {len(raw)} bytes, header needs {header}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(shape)  # Python ints: a header of 2^32 x 2^32 x 2^32 does not wrap
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise AelabError(
            f"{path}: {what}: {len(raw)} bytes, but its header {tuple(shape)} says {expected}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def encode(array: np.ndarray) -> bytes:
    """`array` (uint8) as the bytes of an IDX file."""
    if array.dtype != np.uint8:
        raise TypeError(f"IDX writer takes uint8, got {array.dtype}")
    head = struct.pack(">HBB", 0, UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + np.ascontiguousarray(array).tobytes()
