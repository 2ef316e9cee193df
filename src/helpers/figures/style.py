"""One style for the whole book: a colour per analysed model and per token type, the page's size
and fonts, and how a notebook draws its figures (:func:`setup_notebook`)."""
from __future__ import annotations

from typing import Mapping, Sequence

MODEL_COLORS = {"fine-tuned": "#1f77b4", "scratch": "#d62728", "pretrained": "#7f7f7f"}
TYPE_COLORS = {"context word": "#9467bd", "motion numbers": "#1f77b4", "color numbers": "#ff7f0e",
               "punctuation": "#7f7f7f", "other": "#c7c7c7"}
TOKEN_TYPES = tuple(TYPE_COLORS)
NUMBER_TYPES = ("motion numbers", "color numbers")

# The rendered page's body column is about 750-800 CSS px wide and a figure is shown at 100 px per
# inch, so a figure at most PAGE_WIDTH inches wide is never scaled down, and its fonts keep their
# point size.  No text is smaller than MIN_FONT points (tick labels, legends, token labels).
PAGE_WIDTH = 7.5
MAX_HEIGHT = 8.0
MIN_FONT = 8.0
TICK_FONT = 8.5

RC = {"font.size": 10, "axes.titlesize": 10, "axes.labelsize": 9.5, "xtick.labelsize": TICK_FONT,
      "ytick.labelsize": TICK_FONT, "legend.fontsize": 8.5, "legend.title_fontsize": 9,
      "figure.titlesize": 11, "figure.dpi": 100, "savefig.dpi": "figure",
      "figure.figsize": (6.4, 4.0)}


def setup_notebook(rc: Mapping | None = None) -> None:
    """Called by every chapter's first cell: the book's matplotlib style (:data:`RC`) and
    high-resolution output.  Figures are PNGs at twice their pixel size ("retina") with width and
    height metadata, so Quarto and Jupyter show them at their intended size (100 px per inch),
    sharp on high-resolution screens.  Outside IPython only the style is set."""
    import matplotlib
    import matplotlib.pyplot as plt  # noqa: F401  (activates the inline backend before the style is set)
    try:
        from IPython import get_ipython
        shell = get_ipython()
    except ImportError:                                  # pragma: no cover - IPython ships with the book
        shell = None
    if shell is not None and "inline" in matplotlib.get_backend():
        from matplotlib_inline.backend_inline import set_matplotlib_formats
        set_matplotlib_formats("retina")
    matplotlib.rcParams.update({**RC, **(rc or {})})


def model_color(name: str, i: int = 0) -> str:
    """The colour of a model from a label that names it ('fine-tuned (N=512)', 'scratch, zero'...);
    labels that name none get matplotlib's i-th default colour."""
    for key in ("scratch", "pretrained", "fine-tuned"):
        if key in name:
            return MODEL_COLORS[key]
    return f"C{i}"


def tick_step(n: int, length_in: float, pitch_in: float = 0.18) -> int:
    """Label every `step`-th of `n` positions along an axis `length_in` inches long so that labels
    are at least `pitch_in` inches apart (1 when every label fits)."""
    if n <= 0:
        return 1
    return max(1, int(-(-n * pitch_in // max(length_in, 1e-6))))


def index_ticks(ax, n: int, length_in: float, axis: str = "x", pitch_in: float = 0.18) -> None:
    """Integer ticks 0..n-1 (layers, heads) on `axis`, thinned to fit `length_in` inches."""
    step = tick_step(n, length_in, pitch_in)
    if step > 1:                                         # round steps read better: 2, 5, 10 ...
        step = next(s for s in (2, 5, 10, 20, 50, 100, 10 ** 9) if s >= step)
    (ax.set_xticks if axis == "x" else ax.set_yticks)(range(0, n, step))


# how token labels may show a space: a visible space, GPT-2's byte-level mark, SentencePiece's mark
SPACE_MARKS = ("\u2423", "\u0120", "\u2581")


def token_words(labels: Sequence[str]) -> list[tuple[int, int, str]]:
    """Group token labels into words, ``(first, last, text)``: a word starts at a token that
    begins with whitespace or a mark of it (:data:`SPACE_MARKS`), or at the first token;
    ``'Context', ':'`` is one word ``Context:``, ``' +', '0', '.', '12'`` another (``+0.12``).
    Alternatives such as ``' +| -'`` lose their inner spaces (``+|-``)."""
    words: list[list] = []
    for i, t in enumerate(labels):
        t = str(t)
        for mark in SPACE_MARKS:
            t = t.replace(mark, " ")
        if not words or t[:1].isspace():
            words.append([i, i, t])
        else:
            words[-1][1] = i
            words[-1][2] += t
    return [(a, b, " ".join(w.replace("| ", "|").split()) or "\u2423") for a, b, w in words]


def token_ticks(ax, labels: Sequence[str], length_in: float, axis: str = "x",
                colors: Sequence[str] | None = None, fontsize: float = TICK_FONT,
                family: str = "monospace") -> str:
    """Token labels along `axis` (``x``: rotated 90 degrees) of an axis `length_in` inches long:
    every token when they fit at `fontsize`; otherwise one label per word (:func:`token_words`) at
    its first token, with a minor tick at every token; when even the words do not fit, every k-th
    word.  `colors` (one per token) colour the labels.  Returns ``"tokens"`` or ``"words"``."""
    n = len(labels)
    pitch = fontsize * 1.35 / 72                          # inches per label, rotated or not
    set_ticks = ax.set_xticks if axis == "x" else ax.set_yticks
    rot = 90 if axis == "x" else 0
    if n * pitch <= length_in:
        pos = list(range(n))
        texts = [repr(str(s))[1:-1].replace(" ", "\u2423") for s in labels]
        mode = "tokens"
    else:
        words = token_words(labels)
        step = tick_step(len(words), length_in, pitch)
        words = words[::step]
        pos, texts = [w[0] for w in words], [w[2] for w in words]
        set_ticks(range(n), minor=True)
        mode = "words"
    set_ticks(pos)
    (ax.set_xticklabels if axis == "x" else ax.set_yticklabels)(texts, rotation=rot, fontsize=fontsize,
                                                                  family=family)
    if colors is not None:
        ticks = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
        for tick, p in zip(ticks, pos):
            tick.set_color(colors[p])
    return mode
