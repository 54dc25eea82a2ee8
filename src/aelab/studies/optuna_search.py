"""A search's records in Optuna: the module (imported only when a search runs, as it is slow
to import), the storage (DIR/optuna.journal, or an RDB at a URL), the sampler and pruner a
study's [search] names, and the Optuna study itself, opened or created. `aelab tune` runs
trials against it (tune.py); the search's report reads it (tune_report.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from aelab.errors import AelabError
from aelab.studies import study
from aelab.studies.folder import StudyDir
from aelab.studies.search import Search


def optuna_module():
    import optuna  # imported when a search runs: it is slow to import
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def storage(out: Path, url: str | None):
    """The search's storage: the journal file in `out`, or the Optuna RDB at `url`."""
    optuna = optuna_module()
    if url:
        return url
    from optuna.storages.journal import JournalFileBackend
    return optuna.storages.JournalStorage(JournalFileBackend(str(StudyDir(out).journal)))


def sampler(search: Search, seed: int):
    optuna = optuna_module()
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if search.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True)


def pruner(search: Search):
    optuna = optuna_module()
    if search.pruner == "median":  # a trial below the median of the others at the same epoch stops
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def open_search(s: study.Study, out: Path, url: str | None):
    """The Optuna study of `s` in its storage, created on first use; its directions checked."""
    optuna = optuna_module()
    failures: tuple = (ValueError, RuntimeError)  # a bad URL, a journal that cannot be written
    if url:
        from sqlalchemy.exc import SQLAlchemyError  # the server down or refusing (Optuna's RDB storage is SQLAlchemy's)
        failures += (SQLAlchemyError,)
    try:
        found = optuna.create_study(storage=storage(out, url), study_name=s.path.stem, directions=s.search.directions,
                                    pruner=pruner(s.search), load_if_exists=True)
    except ImportError as e:  # the database's driver
        raise AelabError(f"--storage {url}: no driver for it ({e.__cause__ or e}); for PostgreSQL: "
                         "pip install 'psycopg[binary]'") from None
    except failures as e:
        raise AelabError(f"--storage {url or StudyDir(out).journal}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    if [d.name.lower() for d in found.directions] != s.search.directions:
        raise AelabError(f"{out}: its search {s.path.stem!r} has other objectives than {s.path} now; "
                         "choose another --out")
    return found
