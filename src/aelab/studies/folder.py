"""A study's folder, the counterpart of a run directory for a set of runs:

    OUT/runs/NAME/         each run's directory (a search's trials: runs/trial-0007)
    OUT/figures/NAME/      each run's figures; figures/all_curves.png and the rest of the overview
    OUT/report.html        the report, report.md beside it
    OUT/optuna.journal     a search's records (aelab tune), .tune.lock its workers' lock
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aelab.errors import AelabError
from aelab.reporting.layout import REPORT


@dataclass(frozen=True)
class StudyDir:
    path: Path

    def run(self, name: str) -> Path:
        return self.path / "runs" / name

    def trial(self, number: int) -> Path:
        return self.run(f"trial-{number:04d}")

    def figures(self, name: str = "") -> Path:
        return self.path / "figures" / name if name else self.path / "figures"

    @property
    def report(self) -> Path:
        return self.path / REPORT

    @property
    def journal(self) -> Path:
        return self.path / "optuna.journal"

    @property
    def lock(self) -> Path:
        return self.path / ".tune.lock"

    def check(self) -> None:
        """Refuse a folder that holds something else than a study (a report, or runs begun)."""
        if self.path.is_file():
            raise AelabError(f"{self.path}: is a file; --out must be a directory")
        if (self.path.is_dir() and any(self.path.iterdir()) and not self.report.is_file()
                and not (self.path / "runs").is_dir()):
            raise AelabError(f"{self.path}: not empty and holds no report; choose another --out")

    def begin(self) -> None:
        """The folder is a study's from here on (check accepts it again)."""
        (self.path / "runs").mkdir(parents=True, exist_ok=True)
