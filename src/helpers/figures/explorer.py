"""The attention explorers.

* :func:`web_explorer`: the **kernel-free** explorer that a static page (Quarto or the static
  preview) shows: every head of every model on a few prompts, embedded in the page with its own
  JavaScript (:func:`helpers.figures.html_explorer.matrix_explorer`); it needs no Python kernel
  and no network.  Its data comes from :func:`helpers.readouts.attention.explorer_patterns`.
* :func:`explorer`: an ipywidgets browser of single patterns for a running Jupyter session.  It
  browses any *pattern source* (:class:`helpers.readouts.attention.PatternSource`: ``names``,
  ``dims``, ``n_prompts`` and ``get(name, prompt, layer, head) -> (pattern, labels, types,
  title)``), so it computes nothing itself.  In a rendered page no kernel runs the callbacks: the
  widget's plain text says so, and ``widget.figure()`` draws its current state as a static figure.
"""
from __future__ import annotations

from helpers.figures.attention import pattern_figure
from helpers.figures.html_explorer import DEFAULT_BUDGET, Matrix, MatrixExplorer, matrix_explorer
from helpers.figures.style import TYPE_COLORS

# the static pattern figure draws "other" tokens darker than the legend's light grey, to be legible
LABEL_COLORS = {**TYPE_COLORS, "other": "#444"}


def web_explorer(patterns, model: str | None = None, layer: int = 0, head: int = 0, prompt: int = 0,
                 budget: int = DEFAULT_BUDGET) -> MatrixExplorer:
    """The kernel-free attention explorer over `patterns`
    (:class:`helpers.readouts.attention.ExplorerPatterns`): a select for the model, the layer, the
    head and the prompt, the pattern (query x key, lower triangle) on one absolute 0-1 scale, token
    labels coloured by type as in :func:`helpers.figures.attention.pattern_figure`, and a hover
    readout.  Prompts at the end are dropped if the page would exceed `budget` bytes (the explorer
    then says so); one prompt over budget raises :class:`~helpers.core.errors.ParameterError`."""
    names = list(patterns.names)
    model = names[0] if model is None else model
    L = max(d[0] for d in patterns.dims.values())
    H = max(d[1] for d in patterns.dims.values())
    prompts = [patterns.prompt_label(i) for i in range(patterns.n_prompts)]
    mats = {}
    for mi, name in enumerate(names):
        for p in range(patterns.n_prompts):
            pats = patterns.patterns[(name, p)]
            labels, types = patterns.labels[(name, p)], patterns.types[(name, p)]
            for li in range(pats.shape[0]):
                for hi in range(pats.shape[1]):
                    mats[(mi, li, hi, p)] = Matrix(pats[li, hi], labels, row_groups=types)
    return matrix_explorer(
        {"model": names, "layer": range(L), "head": range(H), "prompt": prompts}, mats,
        scale="sequential", vmin=0.0, vmax=1.0, lower=True,
        title="{model}, layer {layer}, head {head}; prompt {prompt}", value_label="attention probability",
        row_axis="query", col_axis="key", group_colors={t: LABEL_COLORS[t] for t in TYPE_COLORS},
        initial={"model": model, "layer": layer, "head": head, "prompt": prompt},
        drop_to_fit="prompt", budget=budget, name="Attention explorer",
        caption="Rows: queries, columns: keys; the last row is the answer position. Token labels are "
                "coloured by type. Values are stored to about 0.002.")

STATIC_NOTE = ("Attention explorer (ipywidgets): interactive only in a running Jupyter session, "
               "where its controls call Python; a static page shows the kernel-free explorer instead.")


def _explorer_class():
    import ipywidgets as widgets

    class Explorer(widgets.VBox):
        """The explorer's widget; its plain-text form (what a static page shows) says how to use it."""

        def __repr__(self):
            return STATIC_NOTE
    return Explorer


def explorer(source, model: str | None = None, layer: int = 0, head: int = 0, prompt: int = 0):
    """Dropdowns for model, layer and head and a slider for the prompt over `source`; the figure is
    redrawn on every change, as a PNG in an ``ipywidgets.Image`` (not an ``Output`` widget: a
    headless executor such as papermill's nbclient has to capture an ``Output`` widget's displays
    itself, and that capture hung a smoke build once).  Returns the widget (display it in a
    notebook)."""
    import io

    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    names, dims = list(source.names), dict(source.dims)
    model = names[0] if model is None else model
    if model not in dims:
        raise ValueError(f"model={model!r} is not accepted: accepted values are {names}")
    w_model = widgets.Dropdown(options=names, value=model, description="model")
    w_layer = widgets.Dropdown(options=list(range(dims[model][0])), value=layer, description="layer")
    w_head = widgets.Dropdown(options=list(range(dims[model][1])), value=head, description="head")
    w_prompt = widgets.IntSlider(value=prompt, min=0, max=source.n_prompts - 1, description="prompt",
                                 continuous_update=False)
    image = widgets.Image(format="png")

    def figure():
        pat, labels, types, title = source.get(w_model.value, w_prompt.value, w_layer.value, w_head.value)
        return pattern_figure(pat, labels, types, title)

    state = {"quiet": False}

    def redraw(*_):
        if state["quiet"]:
            return
        fig = figure()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=144, bbox_inches="tight")
        plt.close(fig)
        image.value = buf.getvalue()
        box.draws += 1

    def on_model(change):
        L, H = dims[change["new"]]
        layer_, head_ = min(w_layer.value, L - 1), min(w_head.value, H - 1)
        state["quiet"] = True          # one redraw for the whole change, not one per control
        try:
            w_layer.options, w_head.options = list(range(L)), list(range(H))
            w_layer.value, w_head.value = layer_, head_
        finally:
            state["quiet"] = False
        redraw()

    box = _explorer_class()([widgets.HBox([w_model, w_layer, w_head]), w_prompt, image])
    box.draws = 0
    box.figure = figure
    box.controls = {"model": w_model, "layer": w_layer, "head": w_head, "prompt": w_prompt}
    w_model.observe(on_model, names="value")
    for w in (w_layer, w_head, w_prompt):
        w.observe(redraw, names="value")
    redraw()
    return box
