"""notebooks/quickstart.ipynb runs top to bottom (nbclient, a real Jupyter kernel) with its
parameters cell turned down to seconds, and shows what it says it shows."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "quickstart.ipynb"


def test_the_quickstart_notebook_runs_and_shows_its_figures(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "MINUTES" in params[0].source
    params[0].source = f'MINUTES = 0.02\nTRAIN_SIZE = 2000\nVAL_SIZE = 500\nNLL_K = 2\nOUT = "{tmp_path}"'
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(images) == 4  # reconstructions and samples of each model, inline
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    for name in ("vae", "cvae"):
        assert f"aelab explore {tmp_path}/notebook-{name}-" in text
    assert "cond_acc" in text and len(list(tmp_path.glob("notebook-*/eval.json"))) == 2
