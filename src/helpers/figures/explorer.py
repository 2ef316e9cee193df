"""The attention explorer: an ipywidgets browser of single patterns.

It browses any *pattern source* (:class:`helpers.readouts.attention.PatternSource`: ``names``,
``dims``, ``n_prompts`` and ``get(name, prompt, layer, head) -> (pattern, labels, types, title)``),
so it computes nothing itself.  In a rendered page no kernel runs the callbacks: the widget's plain
text says so, and ``widget.figure()`` draws its current state as a static figure.
"""
from __future__ import annotations

from helpers.figures.attention import pattern_figure

STATIC_NOTE = ("Attention explorer: interactive only in a running Jupyter session (the rendered "
               "book cannot run Python callbacks); the figure below shows its initial state.")


def _explorer_class():
    import ipywidgets as widgets

    class Explorer(widgets.VBox):
        """The explorer's widget; its plain-text form (what a static page shows) says how to use it."""

        def __repr__(self):
            return STATIC_NOTE
    return Explorer


def explorer(source, model: str | None = None, layer: int = 0, head: int = 0, prompt: int = 0):
    """Dropdowns for model, layer and head and a slider for the prompt over `source`; the figure is
    redrawn on every change.  Returns the widget (display it in a notebook)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    names, dims = list(source.names), dict(source.dims)
    model = names[0] if model is None else model
    if model not in dims:
        raise ValueError(f"model={model!r} is not accepted: accepted values are {names}")
    w_model = widgets.Dropdown(options=names, value=model, description="model")
    w_layer = widgets.Dropdown(options=list(range(dims[model][0])), value=layer, description="layer")
    w_head = widgets.Dropdown(options=list(range(dims[model][1])), value=head, description="head")
    w_prompt = widgets.IntSlider(value=prompt, min=0, max=source.n_prompts - 1, description="prompt",
                                 continuous_update=False)
    out = widgets.Output()

    def figure():
        pat, labels, types, title = source.get(w_model.value, w_prompt.value, w_layer.value, w_head.value)
        return pattern_figure(pat, labels, types, title)

    state = {"quiet": False}

    def redraw(*_):
        if state["quiet"]:
            return
        with out:
            out.clear_output(wait=True)
            fig = figure()
            display(fig)
            plt.close(fig)
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

    box = _explorer_class()([widgets.HBox([w_model, w_layer, w_head]), w_prompt, out])
    box.draws = 0
    box.figure = figure
    box.controls = {"model": w_model, "layer": w_layer, "head": w_head, "prompt": w_prompt}
    w_model.observe(on_model, names="value")
    for w in (w_layer, w_head, w_prompt):
        w.observe(redraw, names="value")
    redraw()
    return box
