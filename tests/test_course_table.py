"""`aelab check submissions/*/model.py --table out.csv`: one row per submission, each in its
own process, the ones that hang, raise at import or call sys.exit a row that says so."""

import csv
import random
import subprocess
import sys
from pathlib import Path

import pytest

import skeletons as sk

# the broken submissions: (folder, what it does at the top of model.py, the status its row says)
BROKEN = [("hangs", "import time\ntime.sleep(3600)\n", "timed out"),
          ("raises", "raise ImportError('no module named data')\n", "raised"),
          ("exits", "import sys\nsys.exit(3)\n", "exited")]
CHANGES = [{}, {"SAMPLE": "mu + sigma * torch.rand_like(sigma)"},
           {"KL": "-0.5 * torch.mean(1 + sigma - mu.pow(2) - sigma.exp())"},
           {"RECON": "torch.nn.L1Loss()(x_, x)"}, {"MU": "self.sigma(xs)"}]


def _submissions(folder: Path, n: int) -> list[Path]:
    """n submissions: the three broken ones, then skeletons with a mistake or none."""
    paths = []
    for name, top, _ in BROKEN[:n]:
        path = sk.write(folder / name, "split")
        path.write_text(top + path.read_text())
        paths.append(path)
    rng = random.Random(0)
    for i in range(n - len(paths)):
        shape = "split" if i == 0 else rng.choice(sorted(sk.SHAPES))
        changes = dict(CHANGES[(i + 1) % len(CHANGES)]) if shape == "split" or (i + 1) % len(CHANGES) in (0, 1, 3) else {}
        paths.append(sk.write(folder / f"student{i:02d}", shape, **changes))
    return paths


def _table(tmp_path: Path, n: int, seconds: int) -> tuple[subprocess.CompletedProcess, list[dict]]:
    paths = _submissions(tmp_path / "submissions", n)
    out = tmp_path / "table.csv"
    done = subprocess.run([sys.executable, "-m", "aelab", "check", *map(str, paths), "--table", str(out),
                           "--time-limit", str(seconds), "--hidden-size", "64"], capture_output=True, text=True,
                          timeout=60 + n * seconds)
    with out.open() as f:
        return done, list(csv.DictReader(f))


def test_a_table_of_four_submissions_goes_on_past_the_broken_ones(tmp_path):
    done, rows = _table(tmp_path, 4, 8)
    assert done.returncode == 1, done.stderr
    assert [r["submission"] for r in rows] == ["hangs", "raises", "exits", "student00"]
    assert [r["status"] for r in rows] == [status for *_, status in BROKEN] + ["mistakes"]
    assert "model.py:1" in rows[1]["detail"] and "ImportError" in rows[1]["detail"]
    # student00 drew its codes with uniform noise: its AE is fine, its VAE and CVAE are not
    assert (rows[3]["AE"], rows[3]["uniform-noise"]) == ("ok", "VAE CVAE") and rows[3]["VAE"] != "ok"
    page = (tmp_path / "table.html").read_text()
    assert "hangs" in page and "no sandbox" in page


@pytest.mark.slow
def test_a_table_of_thirty_submissions_has_thirty_rows(tmp_path):
    done, rows = _table(tmp_path, 30, 60)
    assert len(rows) == 30
    assert [r["status"] for r in rows[:3]] == [status for *_, status in BROKEN]
    assert {r["status"] for r in rows[3:]} == {"checked", "mistakes"}
    assert any("VAE" in r.get("uniform-noise", "") for r in rows)
    assert any("VAE" in r.get("kl-mean-over-dims", "") for r in rows)
