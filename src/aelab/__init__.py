"""aelab: train, measure and explore autoencoders.

The package in roles, each using only those below it (tests/test_layers.py checks it):

    cli, bench              the command line and the speed bench over the library
    checking                the checks every part is held to (`aelab check`, the tests' registry loop)
    explore                 the latent-space explorer: server, model side, page
    studies                 study files; a study's runs trained, evaluated, drawn, reported
    reporting               the report, its figures and plots, image grids
    evaluation, training    peers: metrics, the reference classifier, a run's evaluation; the training loop, signals, torchrun
    runs                    the run record: run directories, checkpoints, locks, TensorBoard, opening a model
    registry                names in a config become objects: data, model, optimizer
    hardware                devices and precision, chosen from what the machine reports
    config, userparts       frozen run configs: TOML in, dotted overrides, TOML out; a user's own parts
    course                  the course's skeleton as a student writes it: their model.py and Loss, run and read
    parts                   each slot's protocol (slots.py), the parts and their theory (PARTS), the Autoencoder
    data                    sources, image folders, IDX files, in-memory splits, the caches
    settings                typed settings with their ranges; PartSettings
    files, errors, language atomic writes; the one user-error type; the report's languages (gettext);
    shipped, usercode       the shipped configs and studies, found by name; a user's file imported by reference

`from aelab import config, registry, train, evaluate, RunDir` reaches the names of the
README's Python example; the ones from higher roles are imported on first use, so that
`import aelab` loads nothing beyond this file.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> (module, attribute or None for the module itself)
_PUBLIC = {
    "config": ("aelab.config", None),
    "registry": ("aelab.registry", None),
    "hardware": ("aelab.hardware", None),
    "train": ("aelab.training.train", None),
    "evaluate": ("aelab.evaluation.evaluate", None),
    "report": ("aelab.reporting.report", None),
    "RunDir": ("aelab.runs.rundir", "RunDir"),
    "RunConfig": ("aelab.config", "RunConfig"),
    "AelabError": ("aelab.errors", "AelabError"),
    "Autoencoder": ("aelab.parts.autoencoder", "Autoencoder"),
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'aelab' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = importlib.import_module(module)
    return getattr(value, attribute) if attribute else value
