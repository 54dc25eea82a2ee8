"""The course's skeleton as a student writes it: `model.py` with the assignment's classes and
`main.py` with a `Loss`, imported and built as the assignment's own `main.py` does.

    args = {"x_dim": 784, "hidden_size": 400, "latent_size": 20,
            "is_dist": decode_type != "AE", "decode_type": decode_type}
    model = VariationalAutoEncoder(Encoder(**args), Decoder(**args))
    loss = Loss(decode_type=decode_type)

`model.py` is imported as the module `model` (which `sys.modules` names so while the
student's code runs), its folder first on `sys.path`, so that `from model import kl_div` in
`main.py` finds it. `main.py` is imported under another name than
`__main__` (its `if __name__ == "__main__":` block does not run) with `sys.argv = [main.py]`,
within a time limit. Whatever the student's code raises is said in one line at their file and
line.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import signal
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

from aelab.errors import AelabError

# decode_type -> the assignment's class of that model
CLASSES = {"AE": "AutoEncoder", "VAE": "VariationalAutoEncoder", "CVAE": "ConditionalVariationalAutoEncoder"}
PARTS = ("Encoder", "Decoder")
MAIN_MODULE = "aelab_course_main"  # the name main.py is imported under (not __main__)
IMPORT_SECONDS = 30


class StudentError(AelabError):
    """The student's code raised: their file, line and message in one line."""


def one_line(e: BaseException) -> str:
    if isinstance(e, SyntaxError):
        return f"SyntaxError: {e.msg}"
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:300]


def at_line(e: BaseException, files: set[str]) -> str | None:
    """'model.py:42' of the deepest frame of `e`'s traceback in one of `files`, else None."""
    if isinstance(e, SyntaxError) and e.filename and str(Path(e.filename).resolve()) in files:
        return f"{Path(e.filename).name}:{e.lineno}"
    found = None
    for frame in traceback.extract_tb(e.__traceback__):
        if str(Path(frame.filename).resolve()) in files:
            found = f"{Path(frame.filename).name}:{frame.lineno}"
    return found


@contextlib.contextmanager
def student(files: set[str], doing: str):
    """Runs the student's code: what it raises becomes one line at their file and line."""
    try:
        yield
    except AelabError:
        raise
    except Exception as e:
        where = at_line(e, files)
        raise StudentError(f"{where or sorted(Path(f).name for f in files)[0]}: {doing}: {one_line(e)}") from None


@contextlib.contextmanager
def time_limit(seconds: float, what: str):
    """TimeoutError after `seconds` (SIGALRM: in the main thread of a Unix process; elsewhere no limit)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"{what} took over {seconds:g} s")

    before = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


def _exec(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AelabError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(path.parent))
    return module


_LOADED: dict[str, object] = {}  # resolved path -> the student's module, once per process


@contextlib.contextmanager
def as_model(module):
    """`model` in sys.modules is the student's model.py while their code runs (their Loss may
    `from model import ...` inside a method), and what it was before once it returns."""
    held = sys.modules.get("model")
    sys.modules["model"] = module
    try:
        yield
    finally:
        if held is None:
            sys.modules.pop("model", None)
        else:
            sys.modules["model"] = held


def import_model(path: Path):
    """model.py as the module `model` (once per process per file)."""
    path = path.resolve()
    if not path.is_file():
        raise AelabError(f"{path}: no such file")
    if str(path) in _LOADED:
        return _LOADED[str(path)]
    held = sys.modules.get("model")
    try:
        with student({str(path)}, "raised on import"):
            module = _exec(path, "model")  # sys.modules["model"] while it runs: its own imports see it
    finally:
        if held is None:
            sys.modules.pop("model", None)
        else:
            sys.modules["model"] = held
    missing = [n for n in PARTS if not inspect.isclass(getattr(module, n, None))]
    if missing:
        raise AelabError(f"{path}: has no class {' nor '.join(missing)} (the assignment's model.py defines "
                         "Encoder, Decoder, AutoEncoder, VariationalAutoEncoder, ConditionalVariationalAutoEncoder)")
    _LOADED[str(path)] = module
    return module


def import_loss(path: Path | None, model_file: Path) -> tuple[type | None, str]:
    """(main.py's Loss class, '') or (None, why aelab's ELBO stands in), imported while `model` is model_file's."""
    if path is None:
        return None, "no main.py beside model.py"
    path = path.resolve()
    if not path.is_file():
        raise AelabError(f"{path}: no such file")
    key = f"{path}|{model_file.resolve()}"
    if key in _LOADED:
        module = _LOADED[key]
    else:
        argv = sys.argv
        sys.argv = [str(path)]
        try:
            with time_limit(IMPORT_SECONDS, f"importing {path.name}"), as_model(import_model(model_file)):
                module = _LOADED[key] = _exec(path, MAIN_MODULE)
        except TimeoutError as e:
            return None, f"{path.name}: {e}"
        except SystemExit as e:
            return None, f"{path.name} called sys.exit({e.code}) on import"
        except Exception as e:
            where = at_line(e, {str(path), str(model_file.resolve())}) or path.name
            return None, f"{where}: importing it raised {one_line(e)}"
        finally:
            sys.argv = argv
    loss = getattr(module, "Loss", None)
    if not inspect.isclass(loss):
        return None, f"{path.name} has no Loss class"
    return loss, ""


@dataclass(frozen=True)
class Sizes:
    """The assignment's arguments, one dict for the encoder and the decoder."""

    x_dim: int = 784
    hidden_size: int = 400
    latent_size: int = 20

    def args(self, decode_type: str) -> dict:
        return {"x_dim": self.x_dim, "hidden_size": self.hidden_size, "latent_size": self.latent_size,
                "is_dist": decode_type != "AE", "decode_type": decode_type}


def _call(cls, args: dict):
    """cls(**args), leaving out what its __init__ takes no parameter for (a student who removed **kwargs)."""
    params = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        args = {k: v for k, v in args.items() if k in params}
    return cls(**args)


def build(module, decode_type: str, sizes: Sizes):
    """The student's model of `decode_type` as main.py builds it: Model(Encoder(**args), Decoder(**args))."""
    name = CLASSES[decode_type]
    cls = getattr(module, name, None)
    if not inspect.isclass(cls):
        raise AelabError(f"{module.__file__}: has no class {name} (the assignment's {decode_type})")
    with as_model(module), student({str(Path(module.__file__).resolve())}, f"building the {decode_type}"):
        args = sizes.args(decode_type)
        return cls(_call(module.Encoder, args), _call(module.Decoder, args))


def build_loss(loss_cls: type, decode_type: str, files: set[str]):
    with student(files, "building Loss"):
        try:
            return loss_cls(decode_type=decode_type)
        except TypeError:
            if "decode_type" in inspect.signature(loss_cls).parameters:
                raise
            return loss_cls()


def loss_positional(loss) -> tuple[int, int]:
    """(required, accepted): the positional parameters of the Loss's forward (or __call__)."""
    fn = loss.forward if hasattr(loss, "forward") else loss.__call__
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return 0, 0
    return sum(p.default is p.empty for p in params), len(params)
