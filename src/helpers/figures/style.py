"""One palette for the whole book: a colour per analysed model and per token type."""
from __future__ import annotations

MODEL_COLORS = {"fine-tuned": "#1f77b4", "scratch": "#d62728", "pretrained": "#7f7f7f"}
TYPE_COLORS = {"context word": "#9467bd", "motion numbers": "#1f77b4", "color numbers": "#ff7f0e",
               "punctuation": "#7f7f7f", "other": "#c7c7c7"}
TOKEN_TYPES = tuple(TYPE_COLORS)
NUMBER_TYPES = ("motion numbers", "color numbers")


def model_color(name: str, i: int = 0) -> str:
    """The colour of a model from a label that names it ('fine-tuned (N=512)', 'scratch, zero'...);
    labels that name none get matplotlib's i-th default colour."""
    for key in ("scratch", "pretrained", "fine-tuned"):
        if key in name:
            return MODEL_COLORS[key]
    return f"C{i}"
