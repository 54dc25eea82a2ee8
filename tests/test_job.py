import json

from aelab import job


def test_main_job_trains_three_models_then_skips_them(tmp_path, capsys, mnist):
    results = job.main_job(tmp_path, epochs=1, deep=False)
    assert [r["kind"] for r in results] == ["ae", "vae", "cvae"]
    out = capsys.readouterr()
    assert "neg_elbo" in out.out and "psnr_db" in out.out and "nats per image" in out.out
    assert all(json.loads((tmp_path / k / "eval.json").read_text())["epoch"] == 1 for k in ("ae", "vae", "cvae"))
    again = job.main_job(tmp_path, epochs=1, deep=False)
    assert out.err.count("training") == 3 and capsys.readouterr().err.count("complete, skipped") == 3
    assert [r["loss"] for r in again] == [r["loss"] for r in results]  # the same checkpoints, re-evaluated
