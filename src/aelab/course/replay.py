"""Calling the student's encoder or decoder again as their `forward` called it.

A call recorded during `forward` (its positional and keyword arguments) is replayed with one
input replaced: the images for the encoder, the code z for the decoder. Where that input sits
is found from values, never from names: `Slot` is the argument and the columns of it (after
flattening each image's row) that hold it, so that `decoder(torch.cat([z, onehot], 1))` and
`decoder(z, ys)` replay alike. The other arguments are taken from the recorded call, row 0
for every row; for a conditioned model, from the call recorded on a batch of that label.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aelab.course.trace import Call


@dataclass(frozen=True)
class Slot:
    arg: int | str  # a position in args, or a keyword
    start: int  # the columns of the argument's flattened rows that hold the input
    stop: int


def _arguments(call: Call) -> list[tuple[int | str, object]]:
    return list(enumerate(call.args)) + list(call.kwargs.items())


def _rows(t: object, b: int) -> torch.Tensor | None:
    """A float tensor's rows flattened (b, -1), or None where it is not one row per image."""
    if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dim() >= 1 and t.shape[0] == b:
        return t.reshape(b, -1)
    return None


def find(call: Call, value: torch.Tensor) -> Slot | None:
    """The slot of `call` that holds `value` (B, W): the argument itself, or W of its columns."""
    b, w = value.shape[0], value.reshape(value.shape[0], -1).shape[1]
    flat = value.reshape(b, -1)
    for key, arg in _arguments(call):
        if arg is value:
            return Slot(key, 0, w)
    for key, arg in _arguments(call):
        rows = _rows(arg, b)
        if rows is None or rows.shape[1] < w:
            continue
        for j in range(rows.shape[1] - w + 1):
            if torch.equal(rows[:, j:j + w], flat):
                return Slot(key, j, j + w)
    return None


def changed(before: Call, after: Call, b: int) -> list[Slot]:
    """Each argument (and its contiguous columns) that differs between two recorded calls."""
    found = []
    for (key, x), (_, y) in zip(_arguments(before), _arguments(after)):
        rx, ry = _rows(x, b), _rows(y, b)
        if rx is None or ry is None or rx.shape != ry.shape:
            continue
        cols = (rx != ry).any(0).nonzero().flatten()
        if len(cols):
            found.append(Slot(key, int(cols[0]), int(cols[-1]) + 1))
    return found


def _get(call: Call, key: int | str):
    return call.args[key] if isinstance(key, int) else call.kwargs[key]


def replay(module: torch.nn.Module, calls: list[Call], slot: Slot, value: torch.Tensor,
           labels: torch.Tensor | None = None):
    """`module` called as `calls` recorded it, with `value` (n, W) in `slot`. `calls`: one
    call, or one per label (calls[k] recorded on a batch labelled k) picked by `labels` (n,)."""
    n, first = value.shape[0], calls[0]
    b = next(t.shape[0] for t in (_get(first, slot.arg),))

    def rows_of(key):
        """This argument for n rows: row 0 of its call, or of each row's label's call."""
        if labels is None or len(calls) == 1:
            t = _get(first, key).to(value.device)
            return t[:1].expand(n, *t.shape[1:])
        return torch.stack([_get(c, key)[0] for c in calls]).to(value.device)[labels]

    def arg(key, recorded):
        if key == slot.arg:
            base = rows_of(key).reshape(n, -1)
            flat = torch.cat([base[:, :slot.start].to(value.dtype), value.reshape(n, -1),
                              base[:, slot.stop:].to(value.dtype)], 1)
            return flat.reshape(n, *recorded.shape[1:])
        if isinstance(recorded, torch.Tensor) and recorded.dim() >= 1 and recorded.shape[0] == b:
            return rows_of(key)
        return recorded

    args = tuple(arg(i, a) for i, a in enumerate(first.args))
    kwargs = {k: arg(k, a) for k, a in first.kwargs.items()}
    return module(*args, **kwargs)
