"""The report's languages: translatable Text, the gettext catalogs against the source, the
fonts that letter a figure in Chinese, and a study's [report] lang."""

import ast
import gettext
import pickle
import sys
import warnings
from pathlib import Path

import pytest

from aelab import language
from aelab.config import ModelConfig
from aelab.errors import AelabError
from aelab.language import N_, Text, join
from aelab.parts.latents import VAE_THEORY
from aelab.reporting import fonts, plots
from aelab.studies import study

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import messages  # noqa: E402  (tools/messages.py: the extraction `make messages` runs)


@pytest.fixture(scope="module")
def template():
    return messages.template()


def test_every_message_has_a_translation_with_the_same_values(template):
    """Each N_ message of the source and each shipped study's title and question is translated
    in every language's .po, not fuzzy, and formats the same names as the English."""
    assert len(template) > 200
    assert messages.languages(), "no .po files"
    for po in messages.languages():
        assert messages.problems(template, po) == []


def test_every_n_call_of_the_source_is_extracted(template):
    """Babel skips a message nested inside another call's arguments: none may hide there (and
    none may be an f-string, which it cannot extract either)."""
    ids = {m.id for m in template}
    missed = []
    for path in (ROOT / "src" / "aelab").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "N_":
                first = node.args[0]
                if not (isinstance(first, ast.Constant) and first.value in ids):
                    missed.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert missed == []


def test_the_compiled_catalogs_are_those_of_the_po_files():
    """What gettext reads (.mo, compiled at install) says what the .po says: a .po edited
    since the install fails here until `make setup` compiles it again."""
    for po in messages.languages():
        mo = po.with_suffix(".mo")
        assert mo.is_file(), f"{mo}: not compiled (make setup)"
        with mo.open("rb") as f:
            compiled = gettext.GNUTranslations(f)
        for message in messages.read(po):
            if message.id:
                assert compiled.gettext(message.id) == message.string, message.id


def test_a_text_reads_as_its_english_and_translates_with_its_values():
    zh = language.get("zh")
    text = N_("{n} epochs", n=10)
    assert text == "10 epochs" and isinstance(text, str)
    assert zh(text) == "10 个 epoch"
    assert zh("10 epochs") == "10 epochs"  # a plain str (a run's name) is never translated
    assert zh(N_("Made {when} by aelab from {n} run(s).", when="2026-01-01 10:00", n=3)) == \
        "由 aelab 于 2026-01-01 10:00 根据 3 次运行生成。"
    nested = N_("trained in {ways}", ways=join(N_(" then "), [N_("{precision} on {device}", precision="bfloat16",
                                                                   device="cpu"), "float32 on cuda"]))
    assert nested == "trained in bfloat16 on cpu then float32 on cuda"
    assert zh(nested) == "训练于 bfloat16，cpu，然后float32 on cuda"
    assert zh(Text("")) == ""  # not the catalog's header
    assert zh(Text("a title of my own")) == "a title of my own"
    assert language.get("en")(nested) == nested
    for value in (text, nested):  # into a study's worker processes
        again = pickle.loads(pickle.dumps(value))
        assert again == value and zh(again) == zh(value)
    assert pickle.loads(pickle.dumps(zh)) is zh


def test_the_formulas_and_numbers_of_the_theory_stay_as_they_are():
    zh = language.get("zh")
    heading, (first, second, third) = VAE_THEORY
    assert zh(heading) == "变分自编码器（VAE）"
    for formula in ("q(z | x) = N(μ(x), diag σ²(x))", "ELBO(x) = E_q(z|x)[log p(x | z)] − KL(q(z | x) ‖ p(z)) ≤ log p(x)"):
        assert formula in first and formula in zh(first)
    assert "½ Σ_j (μ_j² + σ_j² − log σ_j² − 1)" in zh(second)
    assert "证据下界" in zh(first)
    model = ModelConfig(latent_dim=16)
    assert zh(model.describe()) == "VAE, mlp 400, 隐变量 16 维, bernoulli"


def test_an_unknown_language_is_refused_by_name():
    for code in ("fr", 3, None):
        with pytest.raises(AelabError, match="unknown language .*known: en"):
            language.get(code)


def test_a_study_names_its_report_language(tmp_path):
    (tmp_path / "s.toml").write_text('config = "vae_mnist.toml"\n[report]\nlang = "zh"\n')
    assert study.load(tmp_path / "s.toml").lang == language.get("zh")
    (tmp_path / "s.toml").write_text('config = "vae_mnist.toml"\n')
    assert study.load(tmp_path / "s.toml").lang == language.get("en")
    for table, said in (('lang = "klingon"', r"s\.toml: report\.lang: unknown language 'klingon'"),
                        ('language = "zh"', r"s\.toml: report: unknown key 'language'; valid keys: lang")):
        (tmp_path / "s.toml").write_text(f'config = "vae_mnist.toml"\n[report]\n{table}\n')
        with pytest.raises(AelabError, match=said):
            study.load(tmp_path / "s.toml")


def test_a_chinese_figure_title_is_drawn_in_a_font_that_has_its_characters():
    """matplotlib warns of every glyph its font lacks (and draws a box in its place): none here."""
    if fonts.family("zh") is None:
        pytest.skip("no font with Chinese characters on this machine (apt-get install fonts-wqy-microhei)")
    import matplotlib
    from matplotlib.font_manager import FontProperties, findfont

    tr, lettered = fonts.lettering(language.get("zh"))
    assert tr.code == "zh" and lettered["font.sans-serif"][0] == fonts.family("zh")
    with matplotlib.rc_context(lettered), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = plots.curves([(tr(N_("objective")), tr(N_("nats / image")), {"a": ([1, 2], [3, 2])})],
                           tr(N_("Learning curves: {run}", run="vae")), xlabel=tr(N_("epoch")))
        fig.canvas.draw()
        resolved = findfont(FontProperties(family=lettered["font.sans-serif"][0]))
    assert fig.texts[0].get_text() == "学习曲线：vae"
    assert [str(w.message) for w in caught if "missing from font" in str(w.message)] == []
    assert fonts._has(resolved, "习")


def test_without_a_chinese_font_the_figures_keep_english_and_the_report_says_so(monkeypatch):
    monkeypatch.setattr(fonts, "family", lambda code: None)
    zh = language.get("zh")
    tr, lettered = fonts.lettering(zh)
    assert tr.code == "en" and lettered == {}
    (line,) = fonts.missing(zh)
    assert "English labels" in line and "fonts-noto-cjk" in line
    assert zh(line).startswith("图中仍使用英文标注")
    assert fonts.missing(language.get("en")) == []
