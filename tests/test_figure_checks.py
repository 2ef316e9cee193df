"""The checker of the book's figures and printed tables (:mod:`helpers.book.checks`): each rule
fires on a small hand-made notebook that breaks it and stays silent on one that does not, and the
executed smoke book breaks none (its images are high-resolution and fit the page)."""
import base64
import io

import matplotlib
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from helpers.book import checks
from helpers.book.chapters import cell_options

matplotlib.use("Agg")


def _png(color: str = "red", size: tuple[float, float] = (2, 1)) -> str:
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=size)
    ax.set_facecolor(color)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _image(color="red", retina=True, width=100):
    meta = {"image/png": {"width": width, "height": 50}} if retina else {}
    return new_output("display_data", data={"image/png": _png(color), "text/plain": "<Figure>"}, metadata=meta)


def _table():
    return new_output("execute_result", data={"text/html": "<div><table><tr><td>1</td></tr></table></div>",
                                              "text/plain": "   a\n0  1"}, execution_count=1)


def _series():
    return new_output("execute_result", data={"text/plain": "a    1\nb    2\ndtype: object"}, execution_count=1)


FIG = "#| label: fig-x\n#| fig-cap: \"A caption: with a colon.\"\n"


def _nb(*cells):
    nb = new_notebook()
    nb.cells = [new_code_cell(src, outputs=outs) for src, outs in cells]
    return nb


def test_cell_options_are_the_yaml_of_the_leading_option_lines():
    src = '#| label: fig-a\n#| fig-cap: "x: y"\n#| fig-subcap: ["one", "two"]\n#| echo: false\nx = 1\n#| not: this'
    assert cell_options(src)[0] == {"label": "fig-a", "fig-cap": "x: y", "fig-subcap": ["one", "two"],
                                        "echo": False}
    assert cell_options("x = 1\n")[0] == {}
    with pytest.raises(ValueError, match="YAML"):
        cell_options('#| fig-cap: "unclosed\n')


def test_a_good_chapter_has_no_problem():
    nb = _nb((FIG + "fig = f()", [_image()]),
             ('#| label: fig-y\n#| fig-cap: "Two."\n#| fig-subcap: ["a", "b"]\nfor x in y: f()',
              [_image("blue"), _image("green")]),
             ("table", [_table()]),
             ("x = 1", []))
    assert checks.figure_problems(nb, "01") == []
    assert checks.duplicate_figures({"01": nb}) == []


def test_an_image_without_label_or_caption():
    for src in ("fig = f()", "#| label: fig-x\nfig = f()", "#| fig-cap: \"c\"\nfig = f()",
                "#| label: tbl-x\n#| fig-cap: \"c\"\nfig = f()"):
        problems = checks.figure_problems(_nb((src, [_image()])), "03")
        assert len(problems) == 1 and "no '#| label: fig-...'" in problems[0] and problems[0].startswith("03: cell 0")


def test_several_images_need_one_subcaption_each():
    two = [_image("blue"), _image("green")]
    (p,) = checks.figure_problems(_nb((FIG + "f(); g()", two)), "03")
    assert "2 images and no '#| fig-subcap:'" in p and "(fig-x)" in p
    (p,) = checks.figure_problems(_nb((FIG + '#| fig-subcap: ["a", "b", "c"]\nf(); g()', two)), "05")
    assert "2 image(s) but 3 fig-subcap(s)" in p
    assert checks.figure_problems(_nb((FIG + '#| fig-subcap: ["a", "b"]\nf(); g()', two)), "05") == []


def test_a_figure_cell_that_also_prints_a_table():
    (p,) = checks.figure_problems(_nb((FIG + "f(); table", [_image(), _table()])), "03")
    assert "also outputs 1 table(s)" in p
    assert checks.figure_problems(_nb((FIG + "f()", [_image()]), ("table", [_table()])), "03") == []


def test_raw_pandas_and_dict_prints():
    (p,) = checks.figure_problems(_nb(("pd.Series(check)", [_series()])), "02")
    assert "raw pandas Series" in p and "dtype: object" in p
    raw_dict = new_output("execute_result", data={"text/plain": "{'a': 1, 'b': 2}"}, execution_count=1)
    (p,) = checks.figure_problems(_nb(("d", [raw_dict])), "06")
    assert "raw dict" in p
    md = new_output("execute_result", data={"text/markdown": "dtype: fine", "text/plain": "<Markdown>"},
                    execution_count=1)
    stream = new_output("stream", name="stdout", text="{'printed': 'on purpose'}\n")
    assert checks.figure_problems(_nb(("Markdown(x)", [md, stream]), ("t", [_table()])), "02") == []


def test_high_resolution_and_page_width():
    (p,) = checks.figure_problems(_nb((FIG + "f()", [_image(retina=False)])), "01")
    assert "without width/height metadata" in p
    assert checks.figure_problems(_nb((FIG + "f()", [_image(retina=False)])), "01", retina=False) == []
    (p,) = checks.figure_problems(_nb((FIG + "f()", [_image(width=1200)])), "06")
    assert "1200 px wide" in p
    assert checks.figure_problems(_nb((FIG + "f()", [_image(width=1200)])), "06", max_width_px=None) == []


def test_the_same_image_twice_anywhere_in_the_book():
    a = _nb((FIG + "f()", [_image("red")]))
    b = _nb(("#| label: fig-z\n#| fig-cap: \"Z.\"\nf()", [_image("blue")]),
            ("#| label: fig-w\n#| fig-cap: \"W.\"\nf()", [_image("red")]))
    (p,) = checks.duplicate_figures({"03": a, "04": b})
    assert "04: cell 1 (fig-w) image 1 is the same image as 03: cell 0 (fig-x) image 1" == p
    assert checks.duplicate_figures({"03": a, "04": _nb(("#| label: fig-z\n#| fig-cap: \"Z.\"\nf()",
                                                           [_image("blue")]))}) == []
    assert len(checks.book_problems({"03": a, "04": b})) == 1


def test_legibility_of_a_matplotlib_figure():
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(12, 3))
    ax.set_title("tiny", fontsize=5)
    problems = checks.legibility_problems(fig)
    plt.close(fig)
    assert any("in wide" in p for p in problems) and any("smaller than" in p for p in problems)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.set_title("fine", fontsize=10)
    ax.tick_params(labelsize=9)
    assert checks.legibility_problems(fig) == []
    plt.close(fig)


@pytest.mark.slow
def test_the_smoke_book_has_no_figure_or_table_problem(smoke_book):
    from helpers.book.chapters import list_chapters
    _, build, res = smoke_book
    assert res.returncode == 0, res.stderr[-3000:]
    notebooks = {ch: nbformat.read(build / "smoke" / "chapters" / f"{ch}.ipynb", as_version=4)
                 for ch in list_chapters()}
    assert checks.book_problems(notebooks) == []
    n_images = 0
    for ch, nb in notebooks.items():
        for cell in nb.cells:
            for o in cell.get("outputs", []):
                if "image/png" in o.get("data", {}):
                    meta = o.get("metadata", {}).get("image/png", {})
                    assert meta.get("width") and meta.get("height"), (ch, cell.source[:60])
                    # retina: the PNG has twice the pixels of its display size
                    raw = base64.b64decode(o["data"]["image/png"])
                    width_px = int.from_bytes(raw[16:20], "big")
                    assert abs(width_px - 2 * meta["width"]) <= 2, (ch, width_px, meta)
                    n_images += 1
    assert n_images >= 15


def test_token_words_group_a_prompts_tokens():
    from helpers.figures.style import token_words
    labels = ["Context", ":", " color", ".", " Motion", ":", " +", "0", ".", "1", "7", "\u2423-", "0", ".", "2"]
    assert [w[2] for w in token_words(labels)] == ["Context:", "color.", "Motion:", "+0.17", "-0.2"]
    assert token_words(labels)[3][:2] == (6, 10)
    assert [w[2] for w in token_words([" +| -", "#", ".", "#"])] == ["+|-#.#"]


def _smollm_like_labels(n_samples: int = 8) -> tuple[list[str], list[str]]:
    """Token labels and types of a SmolLM2-like prompt (every digit a token): about 90 tokens."""
    labels, types = ["Context", ":", " motion", "."], ["other", "punctuation", "context word", "punctuation"]
    for stream in ("Motion", "Color"):
        labels += [f" {stream}", ":"]
        types += ["other", "punctuation"]
        for _ in range(n_samples):
            labels += [" +", "0", ".", "1", "2"]
            types += [f"{stream.lower()} numbers"] * 5
        labels.append(".")
        types.append("punctuation")
    return labels + [" Answer", ":"], types + ["other", "punctuation"]


@pytest.mark.parametrize("arch", [(30, 9), (12, 12), (2, 2)], ids=["smollm2", "gpt2", "tiny"])
def test_the_books_figures_fit_the_page_at_real_sizes(arch):
    """Every figure of chapters 3, 4 and 6 that depends on the model's size stays within the page's
    width with no text under 8 pt, for SmolLM2 (30 x 9), GPT-2 (12 x 12) and the smoke models."""
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from helpers.figures import ablation, attention, decoding
    from helpers.figures.style import TOKEN_TYPES
    L, H = arch
    rng = np.random.default_rng(0)

    class Stats:
        answer = rng.dirichlet(np.ones(len(TOKEN_TYPES)), size=(6, L, H))
        key_share = rng.dirichlet(np.ones(len(TOKEN_TYPES)), size=6)
        n_layers, n_heads = L, H

        def mass(self, kinds):
            return self.answer[..., [TOKEN_TYPES.index(k) for k in kinds]].sum(-1)

        def share(self, kinds):
            return self.key_share[:, [TOKEN_TYPES.index(k) for k in kinds]].sum(-1)

    models = ("fine-tuned", "scratch", "pretrained")
    grid = pd.DataFrame([{"layer": l, "head": h} for l in range(L) for h in range(H)])
    heads = grid.assign(relevance=rng.normal(size=len(grid)), significant=rng.random(len(grid)) < 0.1)
    svm = grid.assign(accuracy=rng.uniform(0.25, 1, len(grid)), chance=0.25, significant=False)
    labels, types = _smollm_like_labels()
    P = len(labels)
    rows = [{"model": m, "variable": v, "position": p, "layer": p % (L + 1), "accuracy": 0.7, "lo": 0.6, "hi": 0.8,
             "shuffled_accuracy": 0.5} for m in models for v in ("context", "choice") for p in range(P)]
    pattern = np.tril(rng.random((P, P)))
    figures = {
        "head_heatmaps": ablation.head_heatmaps(
            {k: {f"{m}, {k}": rng.normal(size=(L, H)) for m in models[:2]} for k in ("zero", "mean")}, "drop"),
        "number_heatmaps": attention.number_heatmaps({m: Stats() for m in models}),
        "type_bars": attention.type_bars({m: Stats() for m in models}),
        "relevance_heatmaps": attention.relevance_heatmaps({m: heads for m in models}),
        "pattern_figure": attention.pattern_figure(pattern / pattern.sum(1, keepdims=True), labels, types, "t"),
        "plot_by_position": decoding.plot_by_position(pd.DataFrame(rows), labels),
        "plot_by_layer": decoding.plot_by_layer(pd.DataFrame(rows)),
        "plot_head_heatmaps": decoding.plot_head_heatmaps({(m, t): svm for m in models for t in ("a", "b")}),
    }
    problems = {name: checks.legibility_problems(fig) for name, fig in figures.items()}
    for fig in figures.values():
        plt.close(fig)
    assert {k: v for k, v in problems.items() if v} == {}
    assert figures["pattern_figure"].get_figheight() <= 7.0


def test_task_figures_fit_the_page():
    import matplotlib.pyplot as plt

    from helpers.figures import task
    labels, _ = _smollm_like_labels()
    fig = task.tokenization("".join(labels), {"gpt2": labels[:44], "smollm2-135m": labels})
    assert checks.legibility_problems(fig) == []
    plt.close(fig)


def test_with_intervals_makes_narrow_tables():
    import pandas as pd

    from helpers.book.tables import with_intervals
    df = pd.DataFrame({"model": ["a"], "acc": [0.85321], "lo": [0.8], "hi": [0.9], "n": [3.14159]})
    out = with_intervals(df, {"acc": ("lo", "hi")}, names={"acc": "acc [95% CI]"})
    assert list(out.columns) == ["model", "acc [95% CI]", "n"]
    assert out.iloc[0].tolist() == ["a", "0.853 [0.800, 0.900]", 3.142]
    assert list(df.columns) == ["model", "acc", "lo", "hi", "n"]          # the input is left alone


def test_setup_notebook_sets_the_books_style_outside_ipython():
    import matplotlib

    from helpers.figures import style
    with matplotlib.rc_context():
        style.setup_notebook()
        assert matplotlib.rcParams["xtick.labelsize"] == style.TICK_FONT >= style.MIN_FONT
        assert matplotlib.rcParams["figure.dpi"] == 100
