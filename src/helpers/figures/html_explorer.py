"""Kernel-free explorers: matrices browsed with select controls, all in one HTML output.

:func:`matrix_explorer` takes named controls (each a list of option labels) and a mapping from a
choice of one option per control to a :class:`Matrix` (values with row and column labels, each
label optionally in a *group* with a colour, e.g. a token type), and returns a
:class:`MatrixExplorer` whose ``text/html`` representation holds the data and the code that draws
it: a ``<select>`` per control, a ``<canvas>`` heatmap, a hover (and arrow-key) readout of the
cell under the pointer (row label, column label, value), a colour bar and the groups' legend.
Nothing runs in Python after the output is written, so the explorer works in a static page.  Its
``text/plain`` representation says what it is, for front ends that show no HTML.

Design decisions (issue 9):

* **Hand-written, dependency-free JavaScript and a ``<canvas>``**, emitted as a ``text/html``
  output.  The same output must work identically in Quarto's HTML, in the project's own static
  preview (nbconvert, which renders notebook outputs itself) and in a trusted Jupyter notebook.
  Quarto's Observable JS works only in Quarto; Plotly would add about 3.5 MB of JavaScript per
  page (or a CDN, and the site must work offline) and need one trace per choice.  The HTML names
  no external URL (no CDN, no web font: the fonts are the reader's ``sans-serif`` and
  ``monospace``); element ids carry a per-explorer prefix, so a page can hold several.
* **Compact data.**  Values are quantised to one byte: by default 255 levels from ``vmin`` to
  ``vmax`` (``q = round((v - vmin) / (vmax - vmin) * 254)``, so the error is at most ``(vmax -
  vmin) / 508`` and, on a symmetric diverging scale, zero is exact; ``levels`` trades precision
  for size); byte 255 marks a missing value (NaN,
  or the upper triangle of a ``lower=True`` matrix, of which only the lower triangle with its
  diagonal is stored).  The bytes are compressed with zlib and base64-encoded; the browser
  inflates them with its built-in ``DecompressionStream('deflate')`` (every current browser).
  Labels are stored once per distinct label list, not per matrix.  With ``chunk_by`` the data is
  split by that control's options (each part inflated only when first shown).  Measured: an
  attention pattern of SmolLM2-135M on a 52-token prompt (1,378 stored values) takes about 750
  bytes of HTML on average, so 3 models x 30 layers x 9 heads on one prompt take about 0.6 MB
  (about 1.4 MB for an 80-token prompt: the size grows with the square of the length).
  :func:`decode_matrices` decodes a page's data in Python exactly as the JavaScript does.
* **A byte budget per explorer** (``budget``, default :data:`DEFAULT_BUDGET` = 1.5 MB of HTML):
  one explorer must not make a page slow to load.  Over budget, :func:`matrix_explorer` raises
  :class:`~helpers.core.errors.ParameterError` naming the size and the budget, unless
  ``drop_to_fit`` names a control whose *last* options may be dropped until the explorer fits (the
  explorer then says how many it shows); even its first option alone over budget is an error.
* **Colour scales.**  ``scale="sequential"`` (default colour map ``Blues``, ``vmin`` 0) for
  probabilities, ``"diverging"`` (``RdBu_r``, symmetric around 0) for effects; the colour map is a
  255-entry table taken from matplotlib, so the explorer looks like the book's static figures.  A
  check box stretches the colours to the shown matrix's 99th percentile (weak structure becomes
  visible next to a few large values: a causal pattern's first row is always 1); the hover
  readout always gives the stored value.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import html
import itertools
import json
import zlib
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from helpers.core.errors import ParameterError

DEFAULT_BUDGET = 1_500_000          # bytes of HTML per explorer
MISSING = 255                        # the byte of a missing value
LEVELS = 254                         # values map to bytes 0..254
SCALES = {"sequential": "Blues", "diverging": "RdBu_r"}

_counter = itertools.count()


@dataclass
class Matrix:
    """One matrix of an explorer: `values` (rows x columns; NaN = missing), its row labels and
    column labels (default: the row labels) and optionally a group name per label (e.g. a token
    type), coloured by the explorer's ``group_colors``."""
    values: np.ndarray
    rows: Sequence[str]
    cols: Sequence[str] | None = None
    row_groups: Sequence[str] | None = None
    col_groups: Sequence[str] | None = None

    def __post_init__(self):
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.ndim != 2:
            raise ParameterError(f"a Matrix needs 2-d values, got shape {self.values.shape}")
        if self.cols is None:
            self.cols = self.rows
            if self.col_groups is None:
                self.col_groups = self.row_groups
        r, c = self.values.shape
        for what, labels, n in (("rows", self.rows, r), ("cols", self.cols, c),
                                ("row_groups", self.row_groups, r), ("col_groups", self.col_groups, c)):
            if labels is not None and len(labels) != n:
                raise ParameterError(f"a Matrix of shape {self.values.shape} got {len(labels)} {what}")


# ---- encoding (mirrored by the JavaScript and by decode_matrices) ---------------------------------

def quantise(values: np.ndarray, vmin: float, vmax: float, levels: int = LEVELS) -> np.ndarray:
    """Bytes 0..`levels` for `values` clipped to [vmin, vmax]; 255 for NaN."""
    v = np.asarray(values, dtype=np.float64)
    q = np.rint((np.clip(v, vmin, vmax) - vmin) / (vmax - vmin) * levels)
    q[~np.isfinite(v)] = MISSING
    return q.astype(np.uint8)


def dequantise(q: np.ndarray, vmin: float, vmax: float, levels: int = LEVELS) -> np.ndarray:
    """The values the bytes stand for (NaN for 255), as the JavaScript computes them."""
    q = np.asarray(q)
    v = vmin + q.astype(np.float64) / levels * (vmax - vmin)
    return np.where(q == MISSING, np.nan, v)


@functools.lru_cache(maxsize=64)
def _tril(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.tril_indices(n)


def _matrix_bytes(m: Matrix, vmin: float, vmax: float, lower: bool, levels: int) -> bytes:
    q = quantise(m.values, vmin, vmax, levels)
    if lower:
        return q[_tril(q.shape[0])].tobytes()                     # row by row, j <= i
    return q.tobytes()


# ---- the explorer ----------------------------------------------------------------------------------

class MatrixExplorer:
    """A kernel-free explorer: display it (``text/html`` with a ``text/plain`` fallback) or write
    :attr:`html` into a page.  ``size`` is its HTML's length in bytes; ``shown`` maps each control
    to the options it offers (fewer than given when ``drop_to_fit`` dropped some)."""

    def __init__(self, html_text: str, text: str, uid: str, shown: dict[str, list[str]], budget: int):
        self.html, self.text, self.uid, self.shown, self.budget = html_text, text, uid, shown, budget

    @property
    def size(self) -> int:
        return len(self.html.encode("utf-8"))

    def _repr_html_(self) -> str:
        return self.html

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": self.html, "text/plain": self.text}

    def __repr__(self) -> str:
        return self.text

    def page(self, title: str = "Explorer") -> str:
        """A standalone HTML page holding only this explorer."""
        return ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title)
                + "</title></head><body style='margin:1em;font-family:sans-serif'>" + self.html
                + "</body></html>")


def _colormap(name: str) -> list[str]:
    from matplotlib import colormaps
    cm = colormaps[name]
    return ["%02x%02x%02x" % tuple(int(round(255 * c)) for c in cm(i / LEVELS)[:3]) for i in range(LEVELS + 1)]


def _option_index(control: str, options: list[str], x) -> int:
    if isinstance(x, str):
        if x in options:
            return options.index(x)
    elif isinstance(x, (int, np.integer)) and 0 <= int(x) < len(options):
        return int(x)
    raise ParameterError(f"control {control!r} has no option {x!r}: accepted are {options} or their indices")


def matrix_explorer(controls: Mapping[str, Sequence], matrices: Mapping[tuple, Matrix], *,
                    scale: str = "sequential", vmin: float | None = None, vmax: float | None = None,
                    cmap: str | None = None, lower: bool = False, levels: int = LEVELS, title: str | None = None,
                    value_label: str = "value", row_axis: str = "row", col_axis: str = "column",
                    group_colors: Mapping[str, str] | None = None, caption: str = "",
                    initial: Mapping[str, object] | None = None, stretch: bool = False,
                    chunk_by: str | None = None, drop_to_fit: str | None = None,
                    budget: int = DEFAULT_BUDGET, name: str = "Matrix explorer") -> MatrixExplorer:
    """A kernel-free explorer of `matrices`: a ``<select>`` per control and a heatmap of the matrix
    of the chosen options.

    * `controls`: control name -> its options (shown with ``str``), in the order of the keys;
    * `matrices`: key -> :class:`Matrix`; a key has one entry per control, an option label or its
      index.  Keys may be missing (the explorer then says "no data for this choice");
    * `scale`: ``"sequential"`` (``vmin`` defaults to 0, ``vmax`` to the largest value) or
      ``"diverging"`` (symmetric: ``vmax`` defaults to the largest absolute value); values
      outside [vmin, vmax] are clipped; `cmap` is a matplotlib colour map name;
    * `lower`: store only the lower triangle with the diagonal (square causal patterns);
      `levels`: values are stored as bytes 0..levels (at most 254; fewer levels compress better,
      the error is at most ``(vmax - vmin) / (2 * levels)``);
    * `title`: shown above the heatmap, ``{control}`` replaced by the chosen option (default:
      every control and its choice); `value_label`, `row_axis`, `col_axis` name the value and the
      axes; `group_colors`: group name -> CSS colour of the labels of that group (and the legend);
    * `initial`: the options shown first (default: each control's first); `stretch`: whether
      the "stretch colours" box (colours up to the matrix's 99th percentile) starts checked;
    * `chunk_by`: a control whose options split the data in separately inflated parts;
      `drop_to_fit`: a control whose last options are dropped until the HTML fits `budget` bytes
      (it is also the `chunk_by` control); without it an explorer over budget raises
      :class:`ParameterError`.  `name` starts the ``text/plain`` fallback.
    """
    if scale not in SCALES:
        raise ParameterError(f"scale={scale!r} is not accepted: accepted values are {list(SCALES)}")
    if not controls:
        raise ParameterError("matrix_explorer needs at least one control")
    if not (isinstance(levels, (int, np.integer)) and 2 <= levels <= LEVELS):
        raise ParameterError(f"levels={levels!r} is not accepted: expected an integer in [2, {LEVELS}]")
    if budget <= 0:
        raise ParameterError(f"budget={budget} is not accepted: expected a positive number of bytes")
    names = [str(k) for k in controls]
    options = {str(k): [str(o) for o in v] for k, v in controls.items()}
    for k, v in options.items():
        if not v:
            raise ParameterError(f"control {k!r} has no options")
    if drop_to_fit is not None:
        if chunk_by is not None and chunk_by != drop_to_fit:
            raise ParameterError(f"drop_to_fit={drop_to_fit!r} must also be the chunk_by control, not {chunk_by!r}")
        chunk_by = drop_to_fit
    if chunk_by is not None and chunk_by not in options:
        raise ParameterError(f"chunk_by/drop_to_fit={chunk_by!r} is not a control: controls are {names}")
    data: dict[tuple[int, ...], Matrix] = {}
    for key, m in matrices.items():
        key = key if isinstance(key, tuple) else (key,)
        if len(key) != len(names):
            raise ParameterError(f"key {key!r} has {len(key)} entries for {len(names)} controls {names}")
        if not isinstance(m, Matrix):
            raise ParameterError(f"matrices[{key!r}] is a {type(m).__name__}, not a Matrix")
        if lower and m.values.shape[0] != m.values.shape[1]:
            raise ParameterError(f"lower=True needs square matrices; {key!r} has shape {m.values.shape}")
        data[tuple(_option_index(c, options[c], x) for c, x in zip(names, key))] = m
    if not data:
        raise ParameterError("matrix_explorer needs at least one matrix")

    finite = np.concatenate([m.values[np.isfinite(m.values)].ravel() for m in data.values()] + [np.zeros(1)])
    if scale == "sequential":
        lo = 0.0 if vmin is None else float(vmin)
        hi = float(finite.max()) if vmax is None else float(vmax)
    else:
        hi = float(np.abs(finite).max()) if vmax is None else float(vmax)
        lo = -hi if vmin is None else float(vmin)
    if not hi > lo:
        hi = lo + 1.0
    lut = _colormap(cmap or SCALES[scale])

    # groups and label lists, stored once each
    groups: list[str] = list(group_colors or {})
    label_sets: list[dict] = []
    label_index: dict[str, int] = {}
    label_memo: dict[tuple, int] = {}       # by the identity of the label lists (shared by many matrices)

    def group_ids(gs):
        if gs is None:
            return None
        for g in gs:
            if g not in groups:
                groups.append(str(g))
        return [groups.index(g) for g in gs]

    def labelset(m: Matrix) -> int:
        ident = (id(m.rows), id(m.cols), id(m.row_groups), id(m.col_groups))
        if ident in label_memo:
            return label_memo[ident]
        entry = {"r": [str(x) for x in m.rows], "rg": group_ids(m.row_groups)}
        if list(m.cols) != list(m.rows) or m.col_groups != m.row_groups:
            entry.update(c=[str(x) for x in m.cols], cg=group_ids(m.col_groups))
        k = json.dumps(entry, sort_keys=True)
        if k not in label_index:
            label_index[k] = len(label_sets)
            label_sets.append(entry)
        label_memo[ident] = label_index[k]
        return label_index[k]

    # the data, one part per option of the chunk control (or one part)
    ci = names.index(chunk_by) if chunk_by is not None else -1
    other = [i for i in range(len(names)) if i != ci]
    radix = [len(options[names[i]]) for i in other]
    n_parts = len(options[chunk_by]) if chunk_by is not None else 1
    keys_by_part: dict[int, list[tuple[int, ...]]] = {}
    for key in sorted(data):
        keys_by_part.setdefault(key[ci] if ci >= 0 else 0, []).append(key)

    def make_part(p: int) -> dict:
        raw, keys, runs = bytearray(), [], []
        for key in keys_by_part.get(p, []):
            m, flat = data[key], 0
            for i, n in zip(other, radix):
                flat = flat * n + key[i]
            raw += _matrix_bytes(m, lo, hi, lower, levels)
            if keys and keys[-1][1] == flat:
                keys[-1][1] = flat + 1
            else:
                keys.append([flat, flat + 1])
            r, c = m.values.shape
            run = [r, c, labelset(m)]
            if runs and runs[-1][1:] == run:
                runs[-1][0] += 1
            else:
                runs.append([1, *run])
        return {"d": base64.b64encode(zlib.compress(bytes(raw), 6)).decode("ascii"), "n": len(raw),
                "k": keys, "u": runs}

    init = [0] * len(names)
    for k, v in (initial or {}).items():
        if k not in options:
            raise ParameterError(f"initial names {k!r}, which is not a control: controls are {names}")
        init[names.index(k)] = _option_index(k, options[k], v)
    template = title if title is not None else ", ".join(f"{c} {{{c}}}" for c in names)
    number = next(_counter)
    meta = {"controls": names, "chunk": ci, "radix": radix, "lower": lower, "vmin": lo, "vmax": hi,
            "levels": int(levels), "lut": "".join(lut), "title": template, "value": value_label,
            "rowAxis": row_axis, "colAxis": col_axis, "groups": groups, "labels": label_sets,
            "diverging": scale == "diverging", "stretch": bool(stretch)}

    def build(parts: list[dict]) -> tuple[str, str, dict[str, list[str]]]:
        shown = dict(options)
        note = ""
        if ci >= 0:
            shown[chunk_by] = options[chunk_by][:len(parts)]
            if len(parts) < n_parts:
                note = (f"Shows the first {len(parts)} of {n_parts} options of \u201c{chunk_by}\u201d: "
                        f"the explorer's byte budget is {budget:,} bytes.")
        digest = hashlib.sha1("".join(p["d"] for p in parts).encode()).hexdigest()[:8]
        uid = f"mx{digest}n{number}"
        m = dict(meta, parts=parts, options=shown, colors=[str((group_colors or {}).get(g, "#444")) for g in groups],
                 init=[min(x, len(shown[c]) - 1) for x, c in zip(init, names)])
        return _html(uid, m, names, shown, caption, note), uid, shown

    # with drop_to_fit, parts are added while the explorer fits the budget
    parts = [make_part(p) for p in range(n_parts if drop_to_fit is None else 1)]
    page, uid, shown = build(parts)
    size = len(page.encode("utf-8"))
    for p in range(1, n_parts if drop_to_fit is not None and size <= budget else 0):
        more = parts + [make_part(p)]
        trial = build(more)
        trial_size = len(trial[0].encode("utf-8"))
        if trial_size > budget:
            break
        parts, (page, uid, shown), size = more, trial, trial_size
    if size > budget:
        what = (f" even with one option of {drop_to_fit!r}" if drop_to_fit is not None
                else f"; pass fewer matrices, a larger budget or drop_to_fit=<one of {names}>")
        raise ParameterError(f"the explorer's HTML is {size:,} bytes, over its budget of {budget:,} bytes{what}")
    dims = ", ".join(f"{c} ({len(shown[c])} options)" for c in names)
    text = (f"{name}: an interactive HTML view (a heatmap per choice of {dims}; needs a browser with "
            f"JavaScript, no network and no Python kernel). This front end shows no HTML.")
    return MatrixExplorer(page, text, uid, shown, budget)


def decode_matrices(source: MatrixExplorer | str) -> dict[tuple[str, ...], dict]:
    """The matrices embedded in an explorer (or in a page holding one), decoded as the JavaScript
    decodes them: ``{option labels: {"values": array (NaN where missing), "rows": labels,
    "cols": labels, "row_groups": group names or None, "col_groups": ...}}``.  For tests and for
    checking what a page holds."""
    import re
    text = source.html if isinstance(source, MatrixExplorer) else source
    found = re.search(r'<script type="application/json" id="(mx\w+)-data">(.*?)</script>', text, re.S)
    if not found:
        raise ParameterError("no matrix explorer data in this HTML")
    meta = json.loads(found.group(2))
    names, ci, radix = meta["controls"], meta["chunk"], meta["radix"]
    other = [i for i in range(len(names)) if i != ci]
    groups = meta["groups"]
    out = {}
    for p, part in enumerate(meta["parts"]):
        raw = np.frombuffer(zlib.decompress(base64.b64decode(part["d"])), dtype=np.uint8)
        assert len(raw) == part["n"]
        flats = [f for a, b in part["k"] for f in range(a, b)]
        shapes = [tuple(u[1:]) for u in part["u"] for _ in range(u[0])]
        off = 0
        for flat, (r, c, ls) in zip(flats, shapes):
            idx, rest = [0] * len(names), flat
            for i, n in zip(reversed(other), reversed(radix)):
                idx[i], rest = rest % n, rest // n
            if ci >= 0:
                idx[ci] = p
            if meta["lower"]:
                n_bytes = r * (r + 1) // 2
                q = np.full((r, c), MISSING, dtype=np.uint8)
                q[np.tril_indices(r)] = raw[off:off + n_bytes]
            else:
                n_bytes = r * c
                q = raw[off:off + n_bytes].reshape(r, c)
            off += n_bytes
            lab = meta["labels"][ls]
            key = tuple(meta["options"][c_][i] for c_, i in zip(names, idx))
            out[key] = {"values": dequantise(q, meta["vmin"], meta["vmax"], meta["levels"]), "rows": lab["r"],
                        "cols": lab.get("c", lab["r"]),
                        "row_groups": None if lab["rg"] is None else [groups[g] for g in lab["rg"]],
                        "col_groups": (None if lab.get("cg", lab["rg"]) is None
                                       else [groups[g] for g in lab.get("cg", lab["rg"])])}
    return out


# ---- the HTML and its script -----------------------------------------------------------------------

def _html(uid: str, meta: dict, names: list[str], shown: dict[str, list[str]], caption: str, note: str) -> str:
    e = html.escape
    selects = "".join(
        f'<label style="margin-right:1em;white-space:nowrap">{e(c)} <select id="{uid}-c{i}" data-control="{i}">'
        + "".join(f'<option value="{j}"{" selected" if j == meta["init"][i] else ""}>{e(o)}</option>'
                  for j, o in enumerate(shown[c]))
        + "</select></label>" for i, c in enumerate(names))
    legend = "".join(f'<span style="margin-right:1em;white-space:nowrap"><span style="display:inline-block;'
                     f'width:0.8em;height:0.8em;background:{e(col)};margin-right:0.3em"></span>{e(g)}</span>'
                     for g, col in zip(meta["groups"], meta["colors"]))
    data = json.dumps(meta, separators=(",", ":")).replace("</", "<\\/")
    return (
        f'<div id="{uid}" class="matrix-explorer" style="font-family:sans-serif;font-size:13px;'
        f'line-height:1.4;margin:0.5em 0 1em 0;max-width:100%;overflow-x:auto">'
        f'<div style="margin-bottom:0.4em">{selects}<label style="white-space:nowrap">'
        f'<input type="checkbox" id="{uid}-auto"{" checked" if meta.get("stretch") else ""}> '
        f'stretch colours (to this matrix\'s 99th percentile)</label></div>'
        f'<div id="{uid}-title" style="font-weight:bold;margin-bottom:0.2em"></div>'
        f'<canvas id="{uid}-canvas" tabindex="0" style="display:block;outline-offset:2px" '
        f'aria-label="heatmap; hover or use the arrow keys for the values"></canvas>'
        f'<div id="{uid}-readout" aria-live="polite" style="font-family:monospace;min-height:1.4em">'
        f'This explorer needs JavaScript (it needs no network and no Python kernel).</div>'
        f'<div style="font-size:12px">{legend}</div>'
        + (f'<div style="font-size:12px;color:#555">{e(caption)}</div>' if caption else "")
        + (f'<div id="{uid}-note" style="font-size:12px;color:#a00">{e(note)}</div>' if note else "")
        + f'<script type="application/json" id="{uid}-data">{data}</script>'
        f'<script>{_SCRIPT.replace("__UID__", uid)}</script></div>')


_SCRIPT = r"""
(function () {
  "use strict";
  var UID = "__UID__";
  var root = document.getElementById(UID);
  if (!root || root.getAttribute("data-ready")) { return; }
  root.setAttribute("data-ready", "1");
  var D = JSON.parse(document.getElementById(UID + "-data").textContent);
  var canvas = document.getElementById(UID + "-canvas");
  var ctx = canvas.getContext("2d");
  var readout = document.getElementById(UID + "-readout");
  var titleEl = document.getElementById(UID + "-title");
  var auto = document.getElementById(UID + "-auto");
  var sels = [];
  for (var i = 0; i < D.controls.length; i++) { sels.push(document.getElementById(UID + "-c" + i)); }
  var LUT = [];
  for (var k = 0; k * 6 < D.lut.length; k++) { LUT.push("#" + D.lut.substr(6 * k, 6)); }
  var parts = {};
  var cur = null;       // {r, c, off, bytes, ls, lo, hi, geometry}
  var cursor = null;    // [row, col] under the pointer or the arrow keys
  var token = 0, draws = 0;

  function fail(err) {
    readout.textContent = "Explorer error: " + err;
    if (window.console) { console.error("matrix explorer " + UID + ": " + err); }
  }

  function inflate(b64) {
    var bin = atob(b64), a = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { a[i] = bin.charCodeAt(i); }
    if (typeof DecompressionStream === "undefined") {
      return Promise.reject("this browser cannot inflate the data (no DecompressionStream)");
    }
    var stream = new Blob([a]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).arrayBuffer().then(function (b) { return new Uint8Array(b); });
  }

  function part(p) {
    if (!parts[p]) {
      var P = D.parts[p];
      parts[p] = inflate(P.d).then(function (bytes) {
        var index = {}, flats = [], off = 0, u, j, f;
        for (j = 0; j < P.k.length; j++) { for (f = P.k[j][0]; f < P.k[j][1]; f++) { flats.push(f); } }
        var n = 0;
        for (j = 0; j < P.u.length; j++) {
          u = P.u[j];
          for (var t = 0; t < u[0]; t++, n++) {
            index[flats[n]] = {r: u[1], c: u[2], ls: u[3], off: off};
            off += D.lower ? u[1] * (u[1] + 1) / 2 : u[1] * u[2];
          }
        }
        if (off !== bytes.length) { throw "the data has " + bytes.length + " bytes, expected " + off; }
        return {bytes: bytes, index: index};
      });
    }
    return parts[p];
  }

  function choice() { return sels.map(function (s) { return parseInt(s.value, 10); }); }

  function q(i, j) {
    if (D.lower && j > i) { return 255; }
    return cur.bytes[cur.off + (D.lower ? i * (i + 1) / 2 + j : i * cur.c + j)];
  }

  function value(b) { return D.vmin + b / D.levels * (D.vmax - D.vmin); }
  function level(b) { return b * 254 / D.levels; }   // a stored byte on the colour table's 0..254

  function fmt(v) {
    var a = Math.abs(v);
    return (a !== 0 && (a < 1e-3 || a >= 1e4)) ? v.toExponential(2) : v.toFixed(a < 1 ? 3 : 2);
  }

  function title(ch) {
    return D.title.replace(/\{([^}]+)\}/g, function (m, name) {
      var i = D.controls.indexOf(name);
      return i < 0 ? m : D.options[name][ch[i]];
    });
  }

  function update() {
    var ch = choice(), my = ++token;
    titleEl.textContent = title(ch);
    var flat = 0;
    for (var i = 0, r = 0; i < ch.length; i++) {
      if (i !== D.chunk) { flat = flat * D.radix[r] + ch[i]; r++; }
    }
    part(D.chunk >= 0 ? ch[D.chunk] : 0).then(function (P) {
      if (my !== token) { return; }
      var e = P.index[flat];
      if (!e) { cur = null; cursor = null; blank("no data for this choice"); return; }
      cur = {r: e.r, c: e.c, off: e.off, bytes: P.bytes, ls: D.labels[e.ls]};
      if (cursor && (cursor[0] >= cur.r || cursor[1] >= cur.c)) { cursor = null; }
      draw();
      say();
    }).catch(fail);
  }

  function blank(msg) {
    canvas.width = 300; canvas.height = 40;
    canvas.style.width = "300px"; canvas.style.height = "40px";
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, 300, 40);
    readout.textContent = msg;
  }

  // colours: the colour table spans [g[0], g[1]] (levels on 0..254): the whole scale, or with
  // "stretch" 0 to the matrix's 99th percentile (diverging: symmetric around the middle)
  function span() {
    if (!auto.checked) { return [0, 254]; }
    var hist = new Array(255).fill(0), n = 0, i, j, b, k;
    for (i = 0; i < cur.r; i++) {
      for (j = 0; j < cur.c; j++) {
        b = q(i, j);
        if (b === 255) { continue; }
        b = Math.round(D.diverging ? Math.abs(level(b) - 127) : level(b));
        hist[b]++; n++;
      }
    }
    for (k = 0, b = 0; k < 255; k++) { b += hist[k]; if (b >= 0.99 * n) { break; } }
    k = Math.max(k, 1);
    return D.diverging ? [127 - k, 127 + k] : [0, k];
  }

  function color(b) {
    var g = cur.span, t = Math.round((level(b) - g[0]) / (g[1] - g[0]) * 254);
    return LUT[Math.max(0, Math.min(254, t))];
  }

  function draw() {
    var r = cur.r, c = cur.c, ls = cur.ls, i, j, b;
    var rows = ls.r, cols = ls.c || ls.r, rg = ls.rg, cg = ls.c ? ls.cg : ls.rg;
    cur.span = span();
    var cell = Math.max(3, Math.min(18, Math.floor(560 / Math.max(r, c))));
    var fs = Math.max(6, Math.min(11, cell - 1));
    var step = Math.max(1, Math.ceil(6 / cell));
    var font = fs + "px monospace";
    ctx.font = font;
    var wr = 0, wc = 0;
    for (i = 0; i < r; i += step) { wr = Math.max(wr, ctx.measureText(rows[i]).width); }
    for (j = 0; j < c; j += step) { wc = Math.max(wc, ctx.measureText(cols[j]).width); }
    var left = Math.ceil(wr) + 22, top = 6, bottom = Math.ceil(wc) + 22, right = 80;
    var W = left + c * cell + right, H = Math.max(top + r * cell + bottom, 160);
    var dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
    canvas.style.width = W + "px"; canvas.style.height = H + "px";
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    for (i = 0; i < r; i++) {
      for (j = 0; j < c; j++) {
        b = q(i, j);
        if (b === 255) { continue; }
        ctx.fillStyle = color(b);
        ctx.fillRect(left + j * cell, top + i * cell, cell, cell);
      }
    }
    ctx.strokeStyle = "#999"; ctx.lineWidth = 1;
    ctx.strokeRect(left - 0.5, top - 0.5, c * cell + 1, r * cell + 1);
    ctx.font = font; ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    for (i = 0; i < r; i += step) {
      ctx.fillStyle = rg ? D.colors[rg[i]] : "#444";
      ctx.fillText(rows[i], left - 3, top + (i + 0.5) * cell);
    }
    for (j = 0; j < c; j += step) {
      ctx.save();
      ctx.translate(left + (j + 0.5) * cell, top + r * cell + 3);
      ctx.rotate(-Math.PI / 2);
      ctx.fillStyle = cg ? D.colors[cg[j]] : "#444";
      ctx.fillText(cols[j], 0, 0);
      ctx.restore();
    }
    ctx.fillStyle = "#222"; ctx.font = "11px sans-serif"; ctx.textAlign = "center";
    ctx.fillText(D.colAxis, left + c * cell / 2, H - 8);
    ctx.save(); ctx.translate(9, top + r * cell / 2); ctx.rotate(-Math.PI / 2);
    ctx.fillText(D.rowAxis, 0, 0); ctx.restore();
    // colour bar
    var bx = left + c * cell + 14, bh = Math.max(r * cell, 100), bt = top;
    for (k = 0; k < 100; k++) {
      var t = 254 * (1 - k / 99);
      ctx.fillStyle = LUT[Math.round(t)];
      ctx.fillRect(bx, bt + k * bh / 100, 12, bh / 100 + 1);
    }
    ctx.strokeRect(bx - 0.5, bt - 0.5, 13, bh + 1);
    var vlo = value(cur.span[0] * D.levels / 254), vhi = value(cur.span[1] * D.levels / 254);
    ctx.fillStyle = "#222"; ctx.textAlign = "left"; ctx.font = "10px sans-serif";
    ctx.fillText(fmt(vhi), bx + 16, bt + 4);
    ctx.fillText(fmt(vlo), bx + 16, bt + bh - 4);
    cur.geo = {left: left, top: top, cell: cell};
    root.setAttribute("data-draws", String(++draws));
    if (cursor) {
      ctx.strokeStyle = "#000"; ctx.lineWidth = 1.5;
      ctx.strokeRect(left + cursor[1] * cell, top + cursor[0] * cell, cell, cell);
    }
  }

  function say() {
    if (!cur) { return; }
    if (!cursor) {
      readout.textContent = "Hover over a cell (or focus the heatmap and use the arrow keys) for its value.";
      return;
    }
    var ls = cur.ls, i = cursor[0], j = cursor[1];
    var cols = ls.c || ls.r, rg = ls.rg, cg = ls.c ? ls.cg : ls.rg;
    var b = q(i, j);
    readout.textContent = D.rowAxis + " " + i + " \u201c" + ls.r[i] + "\u201d" + (rg ? " (" + D.groups[rg[i]] + ")" : "")
      + ", " + D.colAxis + " " + j + " \u201c" + cols[j] + "\u201d" + (cg ? " (" + D.groups[cg[j]] + ")" : "")
      + ": " + D.value + " " + (b === 255 ? "none" : fmt(value(b)));
  }

  canvas.addEventListener("mousemove", function (ev) {
    if (!cur || !cur.geo) { return; }
    var rect = canvas.getBoundingClientRect(), G = cur.geo;
    var j = Math.floor((ev.clientX - rect.left - G.left) / G.cell);
    var i = Math.floor((ev.clientY - rect.top - G.top) / G.cell);
    var next = (i >= 0 && j >= 0 && i < cur.r && j < cur.c) ? [i, j] : null;
    if (String(next) !== String(cursor)) { cursor = next; draw(); say(); }
  });
  canvas.addEventListener("mouseleave", function () { if (cursor) { cursor = null; draw(); say(); } });
  canvas.addEventListener("keydown", function (ev) {
    if (!cur) { return; }
    var d = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]}[ev.key];
    if (!d) { return; }
    ev.preventDefault();
    var c0 = cursor || [cur.r - 1, 0];
    cursor = [Math.max(0, Math.min(cur.r - 1, c0[0] + d[0])), Math.max(0, Math.min(cur.c - 1, c0[1] + d[1]))];
    draw(); say();
  });
  sels.forEach(function (s) { s.addEventListener("change", update); });
  auto.addEventListener("change", function () { if (cur) { draw(); } });
  update();
})();
"""
