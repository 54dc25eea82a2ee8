"""A user's code imported by reference: 'path/to/file.py:Class' or 'package.module:Class'.

A file is imported under a module name of its own (`aelab_user.<stem>_<hash of its path>`),
once per process, with its folder first on `sys.path` while it runs, so that it may import
its neighbours at its top (`from model import VAE`). They are ordinary modules of the process:
a second folder's `model.py` is not imported in the same process (refused, in one line). The
files it ran are its `sources`: the file and every module it imported from beside it, each
with its sha256, for the run's record.

This is the import machinery only; what a part of the user's must be is userparts.py's.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path

from aelab.errors import AelabError

MODULE_PREFIX = "aelab_user"


def is_reference(name: object) -> bool:
    """A part's name that names a class of the user's ('file.py:Class', 'pkg.mod:Class'):
    built-in names have no colon."""
    return isinstance(name, str) and ":" in name


@dataclass(frozen=True)
class Source:
    """A file of a user's part: where it is and what it held when it was imported."""

    path: str
    sha256: str


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def find(reference: str, folder: Path | None, key: str):
    """(the class, where it is as errors name it, the reference as configs record it)."""
    target, _, class_name = reference.rpartition(":")
    if not target or not class_name.isidentifier():
        raise AelabError(f"{key}: {reference!r} is not 'path/to/file.py:Class' nor 'package.module:Class'")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser()
        path = (path if path.is_absolute() else (folder or Path.cwd()) / path).resolve()
        module, where, canonical = _load_file(path), str(path), f"{path}:{class_name}"
    else:
        module, where, canonical = _import(target), target, reference
    cls = getattr(module, class_name, None)
    if cls is None:
        raise AelabError(f"{where}: has no class {class_name!r} ({key} = {reference!r})")
    return cls, f"{where}:{class_name}", canonical


def sources(cls: type) -> list[Source]:
    """The files a user's part ran: its module's file and the modules it imported from beside it."""
    module = sys.modules.get(cls.__module__)
    paths = getattr(module, "__aelab_sources__", None) or [getattr(module, "__file__", None)]
    return [Source(str(p), sha256(p)) for p in paths if p and Path(p).is_file()]


def _module_name(path: Path) -> str:
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"{MODULE_PREFIX}.{stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"


def _load_file(path: Path):
    name = _module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    if not path.is_file():
        raise AelabError(f"{path}: no such file")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AelabError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    before = set(sys.modules)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))  # its neighbours, while it runs
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's code failed: name the file and what it raised, one line
        del sys.modules[name]
        raise AelabError(f"{path}: raised on import: {one_line(e)}") from None
    finally:
        sys.path.remove(str(path.parent))
    # `import model` / `from model import VAE` meant the neighbour, not another folder's model.py
    for n in sorted(u for u in _used(module) if "." not in u and u != name):
        other = getattr(sys.modules.get(n), "__file__", None)
        if (path.parent / f"{n}.py").is_file() and other and not _under(other, path.parent):
            del sys.modules[name]
            raise AelabError(f"{path}: imports {n!r}, which this process already imported from {other}, not its "
                             f"neighbour {path.parent / f'{n}.py'}; name the files apart, or use one process per folder")
    _record_sources(module, str(path), before)
    return module


def _import(target: str):
    before = set(sys.modules)
    try:
        module = importlib.import_module(target)
    except ModuleNotFoundError as e:
        if e.name and target.startswith(e.name):
            raise AelabError(f"{target}: no such module (installed, or on PYTHONPATH?); "
                             "a file is named as 'path/to/file.py:Class'") from None
        raise AelabError(f"{target}: raised on import: {one_line(e)}") from None
    except Exception as e:
        raise AelabError(f"{target}: raised on import: {one_line(e)}") from None
    file = getattr(module, "__file__", None)
    if file and not hasattr(module, "__aelab_sources__"):
        _record_sources(module, file, before)
    return module


def _used(module) -> set[str]:
    """The names of the modules `module`'s globals come from (a module itself, or a class's or function's)."""
    found = {v.__name__ if isinstance(v, types.ModuleType) else getattr(v, "__module__", None) for v in vars(module).values()}
    return {n for n in found if isinstance(n, str)}


def _record_sources(module, file: str, before: set[str]) -> None:
    """`module.__aelab_sources__`: its file and every module beside it that it imported, while
    it ran (new since `before`) or earlier (named in its globals)."""
    names = (set(sys.modules) - before) | (_used(module) & set(sys.modules))
    beside = {sys.modules[n].__file__ for n in names if sys.modules[n] is not module
              and _under(getattr(sys.modules[n], "__file__", None), Path(file).parent)}
    module.__aelab_sources__ = [str(file), *sorted(beside)]


def _under(file: str | None, folder: Path) -> bool:
    return bool(file) and Path(file).resolve().parent == folder.resolve()


def one_line(e: BaseException) -> str:
    if isinstance(e, SyntaxError):
        return f"SyntaxError: {e.msg} (line {e.lineno})"
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:300]
