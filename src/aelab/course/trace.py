"""Watching the student's code run, without changing it.

`Calls` hooks the student's encoder and decoder modules: each call's positional and keyword
arguments and its output are recorded, and the encoder's output can be replaced by known
values (`substitute`), which is how the sampling in their `forward` is given known means and
spreads. `Watch` is a TorchFunctionMode that records every torch operation the student's files
run (the function, the file and line that called it, the tensors it took and gave) and every
random draw, so that what is found from values can be named at its line.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

UNIFORM = {torch.rand, torch.rand_like, torch.Tensor.uniform_}
GAUSSIAN = {torch.randn, torch.randn_like, torch.normal, torch.Tensor.normal_}


@dataclass
class Call:
    args: tuple
    kwargs: dict
    out: object


@dataclass
class Op:
    func: object
    where: str  # 'model.py:42'
    took: set[int]  # ids of the tensors it was given
    out: object  # kept, so that ids are not reused while the watch lasts


def tensors(value) -> list[torch.Tensor]:
    """The tensors in a value: itself, or inside a tuple, list or dict."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors(v)]
    return []


class Calls:
    """Forward hooks on the student's encoder and decoder (kept for the model's life: a hook
    that records nothing costs a function call)."""

    def __init__(self, encoder: torch.nn.Module, decoder: torch.nn.Module):
        self.encoder: list[Call] = []
        self.decoder: list[Call] = []
        self.recording = False
        self.substitute = None  # encoder output -> what the rest of forward is given instead
        encoder.register_forward_hook(self._on(self.encoder, True), with_kwargs=True)
        decoder.register_forward_hook(self._on(self.decoder, False), with_kwargs=True)

    def _on(self, into: list, is_encoder: bool):
        def hook(module, args, kwargs, out):
            if is_encoder and self.substitute is not None:
                out = self.substitute(out)
            if self.recording:
                into.append(Call(args, kwargs, out))
            return out if is_encoder and self.substitute is not None else None
        return hook

    def record(self, substitute=None):
        """A context in which calls are recorded (cleared first), the encoder's output replaced where asked."""
        return _Recording(self, substitute)


class _Recording:
    def __init__(self, calls: Calls, substitute):
        self.calls, self.sub = calls, substitute

    def __enter__(self) -> Calls:
        self.calls.encoder.clear()
        self.calls.decoder.clear()
        self.calls.recording, self.calls.substitute = True, self.sub
        return self.calls

    def __exit__(self, *exc):
        self.calls.recording, self.calls.substitute = False, None


@dataclass
class Watch(TorchFunctionMode):
    files: set[str] = field(default_factory=set)
    ops: list[Op] = field(default_factory=list)
    draws: list[tuple[str, str]] = field(default_factory=list)  # (uniform | gaussian, where)

    def __post_init__(self):
        super().__init__()
        self.files = {str(Path(f).resolve()) for f in self.files}
        self._code = {}  # code object -> is it in one of the files

    def _where(self) -> str | None:
        f = sys._getframe(2)
        while f is not None:
            code = f.f_code
            inside = self._code.get(code)
            if inside is None:
                inside = self._code[code] = str(Path(code.co_filename).resolve()) in self.files
            if inside:
                return f"{Path(code.co_filename).name}:{f.f_lineno}"
            f = f.f_back
        return None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        where = self._where()
        if where is not None:
            self.ops.append(Op(func, where, {id(t) for t in tensors((args, kwargs))}, out))
            if func in UNIFORM:
                self.draws.append(("uniform", where))
            elif func in GAUSSIAN:
                self.draws.append(("gaussian", where))
        return out

    def first_taking(self, t: torch.Tensor, in_file: str | None = None) -> str | None:
        """Where the first operation that took tensor `t` was called (in `in_file`, where given)."""
        return next((op.where for op in self.ops if id(t) in op.took
                     and (in_file is None or op.where.startswith(in_file + ":"))), None)

    def made(self, t: torch.Tensor) -> str | None:
        """Where the last operation that gave tensor `t` was called."""
        return next((op.where for op in reversed(self.ops) if any(o is t for o in tensors(op.out))), None)
