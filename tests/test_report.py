"""The report: a tiny two-variant study end to end, its figures, and the page in a real browser."""

import json
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import browser
from aelab import language, registry
from aelab.cli import main
from aelab.parts import conditions, latents, networks, objectives
from aelab.reporting import theory
from aelab.reporting import figure_data as subject
from aelab.reporting import figures, fonts, layout, report
from conftest import channel_cnn_toml, tiny, write_photos

BASE = """
[data]
val_size = 500
train_size = 2000
[model]
latent_dim = 2
[model.network]
hidden = [64]
[train]
epochs = 2
batch_size = 100
eval_batch_size = 1000
"""
STUDY = """
title = "Tiny study"
question = "Do both variants show up?"
config = "base.toml"
nll_k = 4
[variants.dae]
set = ["model.latent.name=point", "model.corruption.name=gaussian", "model.corruption.sigma=0.4"]
[variants.cvae3]
set = ["model.condition.name=label", "model.latent_dim=3"]
"""
EXPECTED = {
    "dae": {"curves", "reconstructions", "samples", "manifold", "manifold_quantiles", "scatter", "interpolation",
            "denoising", "gaussian_samples", "code_noise"},
    "cvae3": {"curves", "reconstructions", "samples", "label_grid", "traversals", "scatter", "tsne", "interpolation"},
}


@pytest.fixture(scope="module")
def study_out(tmp_path_factory, mnist):
    """The tiny study, run once (test_rerun_skips_complete_runs runs it again)."""
    root = tmp_path_factory.mktemp("study")
    (root / "base.toml").write_text(BASE)
    (root / "study.toml").write_text(STUDY)
    out = root / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures, "SCATTER_POINTS", 300)
        assert main(["run", str(root / "study.toml"), "--out", str(out)]) == 0
    return out


def test_the_report_lists_both_runs_with_metrics_and_theory(study_out):
    html = (study_out / "report.html").read_text()
    assert _metric_rows(html) == ["dae", "cvae3"]
    for words in ("Tiny study", "Do both variants show up?", "nats per image", "nll_is with K=4",
                  "Autoencoder (AE)", "Conditioning on the label (CVAE)", "Denoising", "<th>corruption</th>",
                  "<th>latent_dim</th>", "AE, mlp 64, latent 2, bernoulli, input noise 0.4;"):
        assert words in html, words
    assert not re.findall(r"(?:src|href)\s*=\s*['\"](?!data:)", html)  # nothing to fetch: every image inline
    assert "<script" not in html and "<link" not in html
    md = (study_out / "report.md").read_text()
    links = re.findall(r"\]\((figures/[^)]+\.png)\)", md)
    assert links and all((study_out / link).is_file() for link in links)
    assert "| dae |" in md and "| cvae3 |" in md
    for name in ("dae", "cvae3"):  # one line each on how to explore the run
        assert f"<code>aelab explore {study_out / 'runs' / name}</code>" in html
        assert f"`aelab explore {study_out / 'runs' / name}`" in md


def _metric_rows(html: str) -> list[str]:
    """The runs of the full metrics table, in order."""
    table = re.search(r"<table id='metrics'>(.*?)</table>", html, re.S).group(1)
    return re.findall(r"<tr><td>(.*?)</td>", table)


def test_a_first_screen_of_figures_then_the_assignments_sections_in_order(study_out):
    """The first screen: each run's headline figure (an AE's reconstructions, a CVAE's label
    grid) and a short table; then the task, hyperparameters, theory, experiment, and the
    student's own reflections, which aelab leaves empty. The same order in the Markdown."""
    html = (study_out / "report.html").read_text()
    at = [html.index(f">{s}</h2>") for s in layout.SECTIONS]
    assert at == sorted(at)
    glance = html[at[0]:at[1]]
    assert "alt='reconstructions of dae'" in glance and "alt='label_grid of cvae3'" in glance
    assert re.findall(r"<tr><td>(.*?)</td>", glance) == ["dae", "cvae3"] and "<th>nll_is</th>" in glance
    assert glance.count("<th>") <= 2 + layout.GLANCE_AT_MOST  # short: run, model and a few metrics
    theory = html[at[3]:at[4]]
    assert "<details><summary>Autoencoder (AE)</summary>" in theory and "<details><summary>Denoising" in theory
    experiment = html[at[4]:at[5]]
    figures = re.findall(r"<h3>(.*?)</h3>", experiment)
    assert figures[:3] == ["Reconstructions", "Samples from the prior", "Label-conditioned samples"], figures
    hyper = html[at[2]:at[3]]
    assert "<tr><td>model.corruption.sigma</td><td>0.4</td><td>-</td></tr>" in hyper
    yours = html[at[5]:]
    assert re.fullmatch(r">5\. Your reflections</h2>\s*<p class='yours'>[^<]*</p>\s*</body></html>\s*", yours), yours
    md = (study_out / "report.md").read_text()
    at_md = [md.index(f"\n## {s}\n") for s in layout.SECTIONS]
    assert at_md == sorted(at_md)
    assert re.fullmatch(r"\n## 5\. Your reflections\n\n<!-- [^>]* -->\n*", md[at_md[5]:]), md[at_md[5]:]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_figure_that_applies_is_drawn_and_not_blank(study_out, name):
    drawn = {p.stem for p in (study_out / "figures" / name).glob("*.png")}
    assert drawn == EXPECTED[name]
    for stem in drawn:
        img = np.asarray(Image.open(study_out / "figures" / name / f"{stem}.png").convert("L"), dtype=float)
        assert img.shape[0] > 150 and img.shape[1] > 250, (stem, img.shape)
        assert img.std() > 20, stem  # not a blank canvas
    assert (study_out / "figures" / "all_curves.png").is_file()


def test_rerun_skips_complete_runs(study_out, capsys):
    """The second run finds both runs complete: it reuses their evaluations and only redraws."""
    evals = {p: p.stat().st_mtime_ns for p in study_out.glob("runs/*/eval.json")}
    first = (study_out / "report.html").stat().st_mtime_ns
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures, "SCATTER_POINTS", 300)
        assert main(["run", str(study_out.parent / "study.toml"), "--out", str(study_out), "--k", "4"]) == 0
    err = capsys.readouterr().err
    assert err.count("complete, skipped") == 2 and "training" not in err
    assert len(evals) == 2 and {p: p.stat().st_mtime_ns for p in study_out.glob("runs/*/eval.json")} == evals
    assert (study_out / "report.html").stat().st_mtime_ns > first  # redrawn


def test_report_of_run_directories(study_out, tmp_path, capsys):
    runs = sorted((study_out / "runs").iterdir())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures, "SCATTER_POINTS", 300)
        assert main(["report", *map(str, runs), "--out", str(tmp_path / "rep"), "--title", "Two runs"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"report: {tmp_path / 'rep' / 'report.html'}")
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Two runs" in html and _metric_rows(html) == ["cvae3", "dae"]


def test_report_refuses_a_directory_that_holds_something_else(study_out, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["report", str(study_out / "runs" / "dae"), "--out", str(tmp_path)]) == 2
    assert "not empty and holds no report" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def _browser_shows_every_image(out: Path, shot: Path) -> None:
    why = browser.missing()
    if why:
        pytest.skip(why)
    result = browser.check_page(out / "report.html", shot)
    n_figures = len(list(out.glob("figures/**/*.png")))
    assert len(result["images"]) == n_figures + 2  # and each run's headline figure again on the first screen
    assert all(complete and width > 0 for _, complete, width in result["images"]), result["images"]
    assert result["errors"] == []
    assert Image.open(shot).size[0] > 800 and Image.open(shot).size[1] > 2000


def test_a_browser_shows_every_image_without_console_errors(study_out, tmp_path):
    _browser_shows_every_image(study_out, Path(os.environ.get("AELAB_SCREENSHOT", tmp_path / "report.png")))


def test_the_browser_check_catches_a_broken_image(study_out, tmp_path):
    why = browser.missing()
    if why:
        pytest.skip(why)
    html = (study_out / "report.html").read_text()
    broken = tmp_path / "broken.html"
    broken.write_text(html.replace("data:image/png;base64,iVBOR", "data:image/png;base64,AAAA", 1))
    result = browser.check_page(broken, tmp_path / "shot.png")
    assert sum(width == 0 for _, _, width in result["images"]) == 1


def test_tsne_of_fewer_test_codes_than_its_perplexity(small_data, monkeypatch):
    """A small test folder (20 images) once ended the report in sklearn's ValueError."""
    monkeypatch.setattr(figures, "SCATTER_POINTS", 20)
    model = registry.build_model(tiny("vae"), small_data.image_shape, 10).eval()
    fig = figures.tsne(subject.Subject(model, small_data, [str(c) for c in range(10)]))
    assert len(fig.axes[0].collections[0].get_offsets()) == 20


def test_interpolation_of_a_folder_of_two_classes(tmp_path, monkeypatch):
    """Two classes make one pair c -> c+1: one row and one row label (there were two rows and
    one label, and matplotlib's ValueError)."""
    from aelab import config

    monkeypatch.setenv("AELAB_CACHE", str(tmp_path / "cache"))
    (tmp_path / "photos").mkdir()
    write_photos(tmp_path / "photos", 6, (12, 12))
    cfg = config.loads(channel_cnn_toml(tmp_path / "photos", image_size=8, val_size=2, latent_dim=16, epochs=1,
                                        batch_size=4), "two classes")
    data = registry.build_data(cfg)
    model = registry.build_model(cfg, data.image_shape, data.num_classes).eval()
    fig = figures.interpolations(subject.Subject(model, data, list(data.class_names)))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["cats to dogs"]


def test_fixed_indices_are_the_first_of_each_class(small_data):
    idx = subject.fixed_indices(small_data.test.labels, 2, small_data.num_classes)
    labels = small_data.test.labels[idx]
    assert labels.tolist() == [c for c in range(10) for _ in range(2)]
    assert idx[0] == int((small_data.test.labels == 0).nonzero()[0])


@pytest.mark.parametrize("kind, model, expect, absent", [
    ("ae", {"latent_dim": 1}, {"strip"}, {"manifold", "scatter", "traversals", "label_grid", "denoising"}),
    ("vae", {"latent_dim": 2}, {"manifold", "manifold_quantiles", "scatter"}, {"strip", "traversals", "tsne"}),
    ("ae", {"latent_dim": 2}, {"manifold", "manifold_quantiles", "scatter"}, {"strip"}),  # quantiles of its codes
    ("cvae", {"latent_dim": 2}, {"label_grid", "scatter"}, {"manifold"}),
    ("vae", {"latent_dim": 5, "corruption": {"name": "gaussian", "sigma": 0.3}}, {"traversals", "tsne", "denoising"},
     {"manifold", "strip"}),
])
def test_figures_follow_the_model_parts(kind, model, expect, absent):
    m = registry.build_model(tiny(kind, model=model), (1, 28, 28), 10)
    applies = {key for key, (_, test, _) in figures.FIGURES.items() if test(m)}
    assert expect <= applies and not absent & applies


def test_theory_comes_from_the_parts_in_use():
    headings = lambda *cfgs: [heading for heading, _ in theory.sections(cfgs)]  # noqa: E731
    assert headings(tiny("vae")) == [latents.VAE_THEORY[0], theory.CONVENTION[0]]
    condition = conditions.condition(tiny("cvae").model)[0]
    assert headings(tiny("cvae"), tiny("ae")) == [latents.VAE_THEORY[0], condition, latents.AE_THEORY[0],
                                                  latents.SAMPLING_CODES[0], theory.CONVENTION[0]]
    iwae = tiny("vae", model={"objective": {"name": "iwae", "samples": 7}})
    assert objectives.IWAE_THEORY[0] in headings(iwae) and "IWAE objective, K = 7" in iwae.model.describe()
    budgeted = tiny("ae", train={"time_budget_min": 1.0})
    assert theory.TIME_BUDGET[0] in headings(budgeted) and theory.TIME_BUDGET[0] not in headings(tiny("ae"))
    deep = tiny("ae", model={"network": {"name": "cnn", "res_blocks": 2}})
    assert headings(deep)[-3:] == [networks.CONVOLUTIONS[0], networks.RESIDUAL_BLOCKS[0], theory.CONVENTION[0]]
    assert "2 residual blocks" in deep.model.describe()
    gdn = tiny("ae", model={"network": {"name": "cnn", "activation": "gdn"}})
    assert headings(gdn)[-2:] == [networks.GDN_THEORY[0], theory.CONVENTION[0]] and networks.GDN_THEORY[0] not in headings(deep)
    assert report.varied_keys([tiny("ae"), tiny("vae")]) == ["model.latent.name"]
    head, _ = report.table_rows([report.Entry(n, tiny(n), {}, Path("m"), {}) for n in ("ae", "vae")])
    assert head[:2] == ["run", "latent"]  # a part's name is shown under the part


def test_a_cvae_is_explained_from_its_own_settings():
    """The textbook CVAE (beta 1, N(0, I), the one-hot as it is) and the shipped one (a learned
    p(z | y), its beta and label scale) each read as what they are."""
    from aelab import config
    from aelab.config import CONFIG_DIR

    def text(cfg):
        return "\n".join(p for heading, paras in theory.sections([cfg]) for p in [heading, *paras])

    textbook = text(tiny("cvae"))
    assert "p(z) = N(0, I)" in textbook and "textbook CVAE" in textbook
    assert "β" not in textbook.split("Conditioning on the label")[1].split("Units")[0].replace("β weights", "")
    assert "How loudly the label speaks" not in textbook and "learned per class" not in textbook
    shipped_cfg = config.load(CONFIG_DIR / "cvae_mnist.toml")
    shipped = text(shipped_cfg)
    m = shipped_cfg.model
    assert m.prior.name == "conditional" and m.objective.beta != 1 and m.condition.scale != 1
    assert "p(z | y) = N(m_y, diag s_y²)" in shipped and "textbook CVAE" not in shipped
    assert f"β = {m.objective.beta:g}" in shipped and f"s = {m.condition.scale:g}" in shipped
    assert f"scaled by {m.condition.scale:g}" in shipped
    other = text(config.with_overrides(shipped_cfg, ["model.objective.beta=3", "model.condition.scale=5"]))
    assert "β = 3" in other and "s = 5" in other and f"β = {m.objective.beta:g}:" not in other


def test_an_evaluation_is_reused_only_for_the_same_checkpoint_and_k(study_out, tmp_path):
    from aelab.evaluation.evaluate import cached_or_evaluate
    from aelab.runs.rundir import RunDir

    shutil.copytree(study_out / "runs" / "cvae3", tmp_path / "run")
    run = RunDir.open(tmp_path / "run")
    kept = json.loads(run.eval_path.read_text())
    assert cached_or_evaluate(run, k=4) == kept and cached_or_evaluate(run, deep=False) == kept
    assert cached_or_evaluate(run, k=3, deep=False)["checkpoint_sha256"] == kept["checkpoint_sha256"]
    assert "nll_k" not in json.loads(run.eval_path.read_text())  # measured again (shallow this time)
    run.write_json(run.eval_path, {**kept, "checkpoint_sha256": "0" * 64})  # as if best.pt had changed
    assert cached_or_evaluate(run, deep=False)["checkpoint_sha256"] == kept["checkpoint_sha256"]


def test_an_ae_manifold_spans_its_codes_and_a_vae_manifold_the_prior(small_data):
    for kind, stochastic in (("ae", False), ("vae", True)):
        model = registry.build_model(tiny(kind, model={"latent_dim": 2}), (1, 28, 28), 10).eval()
        with torch.no_grad():
            model.encoder.net[-1].weight.mul_(40)  # codes far outside [-3, 3]
        s = figures.Subject(model, small_data, [str(c) for c in range(10)])
        (xs, ys), span = figures._axes(s, 3.0, 15)
        if stochastic:
            assert span == "[-3, 3]" and xs[0] == -3 and ys[-1] == 3
        else:
            codes = s.codes[0]
            assert span == "the test codes' range"
            assert xs[0] == pytest.approx(torch.quantile(codes[:, 0].float(), 0.005).item(), rel=1e-4)
            assert ys[-1] == pytest.approx(torch.quantile(codes[:, 1].float(), 0.995).item(), rel=1e-4)
            assert xs[-1] - xs[0] > 6  # wider than the prior's box


def test_run_settings_name_the_image_folder_the_binarisation_the_precision_and_the_budget():
    from types import SimpleNamespace

    from aelab import config
    from aelab.config import CONFIG_DIR

    dogs = config.load(CONFIG_DIR / "dogs_ae.toml")
    trained = [{"from_epoch": 0, "device": "cpu", "precision": "float32", "processes": 1},
               {"from_epoch": 7, "device": "cuda:0", "precision": "bfloat16", "processes": 4}]
    words = report.settings_line(SimpleNamespace(cfg=dogs, done={"epochs_reached": 19.625}, training=trained))
    assert "folder dogs64/train at 64x64;" in words and "binaris" not in words
    assert "20-minute budget (19.625 epochs reached), batch 16" in words
    assert "trained in float32 on cpu then bfloat16 on cuda:0 x 4 processes" in words
    unfinished = report.settings_line(SimpleNamespace(cfg=dogs, done={}, training=trained[:1]))
    assert "20-minute budget, batch 16" in unfinished and "trained in float32 on cpu," in unfinished
    digits = report.settings_line(SimpleNamespace(cfg=tiny("vae", data={"binarize": "dynamic"}), done={}, training=[]))
    assert "mnist (dynamic binarisation);" in digits and "train" not in digits and "2 epochs" in digits
    old = tiny("vae", train={"precision": "bfloat16"})  # a run from before meta.json kept the resolved choice
    assert "bfloat16 training" in report.settings_line(SimpleNamespace(cfg=old, done={}, training=[]))


@pytest.fixture(scope="module")
def zh_out(study_out, tmp_path_factory):
    """The tiny study's report again in Chinese (`aelab run --lang zh`), from a copy of its
    runs: the runs are complete, so only the figures and the report are made again."""
    out = tmp_path_factory.mktemp("zh") / "out"
    shutil.copytree(study_out, out)
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mp.setattr(figures, "SCATTER_POINTS", 300)
        assert main(["run", str(study_out.parent / "study.toml"), "--out", str(out), "--lang", "zh"]) == 0
    # matplotlib warns of each glyph its fonts lack, which it draws as a box: none in any figure
    assert [str(w.message) for w in caught if "missing from font" in str(w.message)] == []
    return out


CJK = re.compile(r"[\u4e00-\u9fff]")


def test_the_chinese_report_translates_every_heading_and_keeps_every_number(study_out, zh_out):
    zh = language.get("zh")
    html, english = (zh_out / "report.html").read_text(), (study_out / "report.html").read_text()
    assert html.startswith("<!doctype html><html lang='zh'>")
    headings = re.findall(r"<(h[123]|summary)[^>]*>(.*?)</\1>", html)
    assert len(headings) > 15
    untranslated = [text for tag, text in headings if tag != "h1" and not CJK.search(text)]
    assert untranslated == []  # h1 is the study's own title, which is the user's
    assert [t for tag, t in headings if tag == "h2"] == [zh(s) for s in layout.SECTIONS]
    yours = html[html.index(f">{zh(layout.SECTIONS[5])}</h2>"):]
    assert re.fullmatch(r">5\. 自己的思考 / Your reflections</h2>\s*<p class='yours'>[^<]*</p>\s*</body></html>\s*", yours)
    for words in ("理论对比", "自编码器（AE）", "以标签为条件（条件变分自编码器 CVAE）", "nll_is 使用 K=4 个重要性样本",
                  "AE, mlp 64, 隐变量 2 维, bernoulli, 输入噪声 0.4; mnist; 2 个 epoch, 批大小 100",
                  "<th>运行</th>", "<th>nll_is</th>", "<h3>重建</h3>", "<h3>从先验采样</h3>"):
        assert words in html, words

    def cells(page):  # the metrics table but its last column (the seconds spent drawing)
        table = re.search(r"<table id='metrics'>(.*?)</table>", page, re.S).group(1)
        return [re.findall(r"<td>(.*?)</td>", row)[:-1] for row in re.findall(r"<tr>(.*?)</tr>", table)[1:]]
    assert cells(html) == cells(english)
    md = (zh_out / "report.md").read_text()
    at = [md.index(f"\n## {zh(s)}\n") for s in layout.SECTIONS]
    assert at == sorted(at) and re.fullmatch(r"\n## 5\. 自己的思考 / Your reflections\n\n<!-- [^>]* -->\n*", md[at[5]:])
    links = re.findall(r"\]\((figures/[^)]+\.png)\)", md)
    assert links and all((zh_out / link).is_file() for link in links)
    for name in ("dae", "cvae3"):  # the figures were lettered again, in Chinese (or English, said in one line)
        assert (zh_out / "figures" / name / "curves.png").read_bytes() != (study_out / "figures" / name / "curves.png").read_bytes()
    assert ("图中仍使用英文标注" in html) == (fonts.family("zh") is None)


def test_a_browser_shows_the_chinese_report_without_errors(zh_out, tmp_path):
    _browser_shows_every_image(zh_out, Path(os.environ.get("AELAB_SCREENSHOT_ZH", tmp_path / "report-zh.png")))
