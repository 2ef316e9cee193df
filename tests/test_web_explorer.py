"""The kernel-free explorers (issue 9): encoding, byte budget, ids, no URLs, the attention data,
and a headless-browser check (skipped without Chromium and Playwright)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.core.errors import ParameterError
from helpers.figures import html_explorer as hx
from helpers.figures.explorer import web_explorer
from helpers.readouts import attention as A
from helpers.tasks.decision import TaskConfig, make_splits

REPO = Path(__file__).resolve().parents[1]
URL = re.compile(r"https?://|//cdn", re.I)


def _grid(rng, lower=False, nan=False, n_rows=5, n_cols=7):
    mats = {}
    for a in range(2):
        for b in range(3):
            n, m = (n_rows, n_rows) if lower else (n_rows + a, n_cols)      # two shapes
            v = rng.normal(size=(n, m))
            if nan:
                v[0, 1] = np.nan
            mats[(a, b)] = hx.Matrix(v, [f"r{i}" for i in range(n)], None if lower else [f"c{j}" for j in range(m)],
                                     row_groups=["g1" if i % 2 else "g2" for i in range(n)])
    return mats


@pytest.mark.parametrize("scale,lower,levels", [("diverging", False, 254), ("sequential", True, 254),
                                                ("diverging", True, 63), ("sequential", False, 2)])
def test_round_trip(scale, lower, levels):
    rng = np.random.default_rng(1)
    mats = _grid(rng, lower=lower, nan=True)
    if scale == "sequential":
        for m in mats.values():
            m.values = np.abs(m.values)
    ex = hx.matrix_explorer({"a": ["x", "y"], "b": range(3)}, mats, scale=scale, lower=lower, levels=levels,
                            group_colors={"g1": "#123456"}, chunk_by="b")
    decoded = hx.decode_matrices(ex)
    from_page = hx.decode_matrices(ex.page())                  # also from a page that holds it
    assert from_page.keys() == decoded.keys()
    assert all(np.array_equal(from_page[k]["values"], d["values"], equal_nan=True) for k, d in decoded.items())
    assert set(decoded) == {(a, str(b)) for a in ("x", "y") for b in range(3)}
    for (a, b), m in mats.items():
        d = decoded[("xy"[a], str(b))]
        v = m.values.copy()
        keep = np.isfinite(v)
        if lower:
            keep &= np.tril(np.ones_like(v, dtype=bool))
        assert np.all(np.isnan(d["values"][~keep]))              # missing and the upper triangle
        span = float(np.nanmax([np.nanmax(np.abs(x.values)) for x in mats.values()]))
        span = span if scale == "sequential" else 2 * span
        assert np.max(np.abs(d["values"][keep] - v[keep])) <= span / (2 * levels) + 1e-12
        assert d["rows"] == list(m.rows) and d["cols"] == list(m.cols)
        assert d["row_groups"] == list(m.row_groups)
        assert d["col_groups"] == (list(m.row_groups) if lower else None)     # square: the rows' groups


def test_quantise_is_exact_at_zero_on_a_symmetric_scale():
    v = np.array([-1.0, -0.5, 0.0, 0.25, 1.0, np.nan, 7.0])
    q = hx.quantise(v, -1.0, 1.0)
    assert list(q) == [0, 64, 127, 159, 254, 255, 254]           # 7 is clipped, NaN is missing
    back = hx.dequantise(q, -1.0, 1.0)
    assert back[2] == 0.0 and np.isnan(back[5]) and back[6] == 1.0


def test_budget_is_enforced():
    rng = np.random.default_rng(2)
    mats = {(p,): hx.Matrix(rng.random((40, 40)), [str(i) for i in range(40)]) for p in range(6)}
    controls = {"prompt": [f"p{p}" for p in range(6)]}
    full = hx.matrix_explorer(controls, mats)
    assert full.size == len(full.html.encode()) and full.size <= hx.DEFAULT_BUDGET
    with pytest.raises(ParameterError, match=rf"{full.size:,} bytes, over its budget of 20,000 bytes"):
        hx.matrix_explorer(controls, mats, budget=20_000)
    fitted = hx.matrix_explorer(controls, mats, budget=20_000, drop_to_fit="prompt")
    assert fitted.size <= 20_000 and 1 <= len(fitted.shown["prompt"]) < 6
    assert f"Shows the first {len(fitted.shown['prompt'])} of 6 options" in fitted.html
    assert set(hx.decode_matrices(fitted)) == {(p,) for p in fitted.shown["prompt"]}
    with pytest.raises(ParameterError, match="even with one option of 'prompt'"):
        hx.matrix_explorer(controls, mats, budget=3_000, drop_to_fit="prompt")


def test_ids_are_unique_and_there_is_no_url():
    rng = np.random.default_rng(3)
    mats = _grid(rng)
    one = hx.matrix_explorer({"a": ["x", "y"], "b": range(3)}, mats, scale="diverging")
    two = hx.matrix_explorer({"a": ["x", "y"], "b": range(3)}, mats, scale="diverging")   # the same data
    assert one.uid != two.uid
    ids = re.findall(r'id="([^"]+)"', one.html + two.html)
    assert len(ids) == len(set(ids)) and all(i.startswith((one.uid, two.uid)) for i in ids)
    assert one.uid in one.html and two.uid not in one.html
    for h in (one.html, two.html):
        assert not URL.search(h)
        assert "<script" in h and "</script>" in h and "<canvas" in h
        assert "needs JavaScript" in h                   # what a page without scripts shows
    bundle = one._repr_mimebundle_()
    assert bundle["text/html"] == one.html == one._repr_html_()
    assert "interactive HTML" in bundle["text/plain"] and repr(one) == bundle["text/plain"]


def test_bad_input_is_named():
    m = hx.Matrix(np.zeros((2, 2)), ["a", "b"])
    with pytest.raises(ParameterError, match="scale='log'"):
        hx.matrix_explorer({"k": ["x"]}, {("x",): m}, scale="log")
    with pytest.raises(ParameterError, match="has no option 'z'"):
        hx.matrix_explorer({"k": ["x"]}, {("z",): m})
    with pytest.raises(ParameterError, match="1 entries for 2 controls"):
        hx.matrix_explorer({"k": ["x"], "j": ["y"]}, {("x",): m})
    with pytest.raises(ParameterError, match="square"):
        hx.matrix_explorer({"k": ["x"]}, {("x",): hx.Matrix(np.zeros((2, 3)), ["a", "b"], ["c", "d", "e"])},
                           lower=True)
    with pytest.raises(ParameterError, match="got 3 rows"):
        hx.Matrix(np.zeros((2, 2)), ["a", "b", "c"])


# ---- the attention explorer's data ------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_models(session_data_dir):
    from helpers.models.sources import load_source
    return {n: load_source(n) for n in ("tiny-gpt2", "tiny-llama")}


@pytest.fixture(scope="module")
def trials():
    return make_splits(TaskConfig(n_samples=4), 0, 0, 8)["test"]


def test_explorer_trials_alternate_contexts(trials):
    chosen = A.explorer_trials(trials, 4)
    assert [t.context for t in chosen] in (["color", "motion"] * 2, ["motion", "color"] * 2)
    assert all(t in trials for t in chosen)
    assert len(A.explorer_trials(trials, 100)) == len(trials)
    with pytest.raises(ValueError, match="at least one prompt"):
        A.explorer_trials(trials, 0)


def test_explorer_patterns_equal_single_patterns(tiny_models, trials):
    """tiny-gpt2 and tiny-llama (2 key/value heads for 4 query heads): every head of one forward
    pass is the pattern single_pattern computes for that head alone."""
    data = A.explorer_patterns(tiny_models, trials, 3)
    assert data.n_prompts == 3 and data.names == ["tiny-gpt2", "tiny-llama"]
    assert data.dims == {"tiny-gpt2": (2, 4), "tiny-llama": (2, 4)}
    for name, (model, tok) in tiny_models.items():
        for i, t in enumerate(data.trials):
            pats = data.patterns[(name, i)]
            n = len(tok.encode(t.prompt))
            assert pats.shape == (2, 4, n, n)
            for layer, head in ((0, 0), (1, 3)):
                pat, labels, types = A.single_pattern(model, tok, t, layer, head)
                np.testing.assert_allclose(pats[layer, head], pat, atol=1e-6)
                assert data.labels[(name, i)] == labels and data.types[(name, i)] == types
            got = data.get(name, i, 1, 3)
            assert got[0] is not None and f"{name}, layer 1, head 3; prompt {i}" in got[3]
    assert not torch.is_tensor(data.patterns[("tiny-llama", 0)])
    assert not np.allclose(data.patterns[("tiny-llama", 0)][0, 0], data.patterns[("tiny-llama", 0)][0, 1])


def test_web_explorer_embeds_every_head(tiny_models, trials):
    data = A.explorer_patterns(tiny_models, trials, 2)
    ex = web_explorer(data, model="tiny-llama", layer=1, head=2)
    assert ex.shown == {"model": ["tiny-gpt2", "tiny-llama"], "layer": ["0", "1"], "head": ["0", "1", "2", "3"],
                        "prompt": [data.prompt_label(0), data.prompt_label(1)]}
    assert not URL.search(ex.html) and ex.size <= hx.DEFAULT_BUDGET
    assert 'selected>tiny-llama</option>' in ex.html
    decoded = hx.decode_matrices(ex)
    assert len(decoded) == 2 * 2 * 4 * 2
    for (name, layer, head, prompt), d in decoded.items():
        i = ex.shown["prompt"].index(prompt)
        p = data.patterns[(name, i)][int(layer), int(head)]
        low = np.tril(np.ones_like(p, dtype=bool))
        assert np.max(np.abs(d["values"][low] - p[low])) <= 1 / 508 + 1e-9
        assert d["rows"] == data.labels[(name, i)] and d["row_groups"] == data.types[(name, i)]
    with pytest.raises(ParameterError, match="over its budget"):
        web_explorer(data, budget=5_000)


# ---- in a browser -------------------------------------------------------------------------------------

def test_explorer_in_headless_chromium(tmp_path):
    """tools/check_explorer.py on its synthetic page: drawn, redrawn by every control, hover value,
    no JavaScript error, no network request.  Skipped without Playwright or Chromium."""
    shot = tmp_path / "explorer.png"
    res = subprocess.run([sys.executable, str(REPO / "tools" / "check_explorer.py"), "--screenshot", str(shot)],
                         capture_output=True, text=True, timeout=240, cwd=REPO)
    if res.returncode == 2:
        pytest.skip(res.stderr.strip() or "no browser")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert '"passed": true' in res.stdout and shot.stat().st_size > 1000
