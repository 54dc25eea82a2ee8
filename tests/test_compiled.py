"""The compiled importance-sampling path: same numbers as eager, and a clean fallback."""

import warnings

import pytest
import torch

from aelab import registry
from aelab.evaluation import compiled, metrics
from conftest import tiny


def _model_and_batches(small_data):
    torch.manual_seed(0)
    model = registry.build_model(tiny("vae"), small_data.image_shape, small_data.num_classes).eval()
    return model, list(small_data.eval_batches(small_data.test, 100))[:2]


def _nll(model, batches, monkeypatch, rows):
    monkeypatch.setattr(metrics, "COMPILE_ROWS", rows)
    torch.manual_seed(1)
    return metrics.nll_importance_sampled(model, batches, 50, rows_per_chunk=2500)


def test_compiled_nll_agrees_with_eager(small_data, monkeypatch):
    model, batches = _model_and_batches(small_data)
    calls = []
    monkeypatch.setattr(metrics, "_log_px_z", lambda *a: calls.append(1) or compiled_fn(*a))
    compiled_fn = compiled.compiled(type(model).log_px_z)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="torch.compile failed")  # no silent fallback
        fast = _nll(model, batches, monkeypatch, rows=1)
    eager = _nll(model, batches, monkeypatch, rows=10**12)
    assert calls  # the compiled function served the first estimate, not the second
    assert fast == pytest.approx(eager, abs=1e-3)


def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch):
    def broken(fn, **kw):
        def call(*a, **k):
            raise RuntimeError("no compiler here\nmore detail")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    double = compiled.compiled(lambda t: 2 * t)
    with pytest.warns(UserWarning, match="no compiler here.*running .* eagerly"):
        assert double(torch.ones(2)).tolist() == [2, 2]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="torch.compile failed")
        assert double(torch.ones(2)).tolist() == [2, 2]  # eager from now on, no second warning


def test_env_turns_compiling_off(monkeypatch):
    monkeypatch.setenv(compiled.ENV, "0")
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("compiled although turned off"))
    assert compiled.compiled(lambda t: t + 1)(torch.zeros(1)).item() == 1
