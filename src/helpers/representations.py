"""Hidden states of the analysed models, their UMAP picture, and its quantitative companions.

**Which residual stream.**  :func:`collect_hidden_states` returns, for each trial, the residual
stream at every requested layer and token position: index ``0`` is the stream entering the first
decoder layer (token + position embeddings), index ``l`` (1 <= l <= L) is the **raw output of
decoder layer l-1**.  The *last layer* of the analyses is index ``L``, the output of the last
decoder layer *before* the final norm (GPT-2's ``ln_f``, Llama's ``norm``).

This is deliberately not Hugging Face's ``output_hidden_states[-1]``: in transformers 5, for both
GPT-2 and Llama, the last element of ``hidden_states`` has the final norm already applied (it is
``last_hidden_state``), while elements ``0 .. L-1`` are raw streams.  We read the raw last stream
with a pre-hook on the final norm (found through :class:`helpers.arch.Arch`), so every index is
the same kind of object; ``final_norm=True`` gives Hugging Face's convention for index ``L``
instead.  ``tests/test_representations.py`` checks both against a manual run of the layers.

**Positions.**  The task's prompts have the same token length within one tokenizer (every number
is written with a sign and two decimals), so positions align across trials and position ``-1`` is
the answer position (the prompt's last token, ``:`` of ``Answer:``, where the model's choice is
read).  A set of prompts of different lengths raises ``ValueError``.

**UMAP and its companions.**  UMAP pictures are persuasive and easy to over-read, so each one comes
with numbers computed on the *same* points: the silhouette of the labelled groups (against label
shuffles) and a cross-validated linear probe (:func:`linear_probe_accuracy`, the decoder of
:mod:`helpers.decoding`).  Points are standardised per unit and reduced to their first 50
principal components before UMAP and the silhouette (:func:`preprocess`): residual streams have
a few "massive" dimensions that would otherwise dominate every Euclidean distance.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .arch import Arch
from .attention import token_types
from .evaluation import encode_prompts
from .hardware import autocast, model_device
from .task import Trial

N_PCA = 50
UMAP_ROWS = (("context", "context"), ("choice", "choice"),
             ("relevant_coh", "relevant coherence"), ("irrelevant_coh", "irrelevant coherence"))


# ---- tokens and positions ----------------------------------------------------------------------

def encode_equal_length(tokenizer, prompts: Sequence[str]) -> torch.Tensor:
    """Token ids (n, T) of prompts that must all have the same token length."""
    seqs = encode_prompts(tokenizer, list(prompts))
    lengths = sorted({len(s) for s in seqs})
    if len(lengths) != 1:
        examples = {n: next(p for p, s in zip(prompts, seqs) if len(s) == n) for n in lengths[:3]}
        raise ValueError(
            f"the prompts have different token lengths {lengths} in this tokenizer, so token "
            f"positions do not align across trials (examples: {examples}); the analyses need "
            "prompts of one token length")
    return torch.tensor(seqs, dtype=torch.long)


def token_labels(tokenizer, prompt) -> list[str]:
    """A readable label per token position, e.g. ``['Context', ':', ' color', '.', ...]``.

    `prompt` may also be a list of prompts (of one token length): a position whose token differs
    across them shows the distinct tokens joined by ``|`` when there are two (``' motion| color'``)
    and ``#`` otherwise (the digits and signs of the numbers)."""
    if isinstance(prompt, str):
        return [tokenizer.decode([i]) for i in encode_prompts(tokenizer, [prompt])[0]]
    ids = encode_equal_length(tokenizer, prompt).numpy()
    out = []
    for col in ids.T:
        distinct = list(dict.fromkeys(col.tolist()))
        if len(distinct) == 1:
            out.append(tokenizer.decode([distinct[0]]))
        elif len(distinct) == 2:
            out.append("|".join(tokenizer.decode([i]) for i in distinct))
        else:
            out.append("#")
    return out


LANDMARKS = ("context word", "end of motion stream", "end of color stream", "answer")


def landmark_positions(tokenizer, prompt: str) -> dict[str, int]:
    """Token positions of the task's landmarks in `prompt` (see :data:`LANDMARKS`): the context
    word, the last token of the motion and of the color numbers, and the answer position (the
    prompt's last token).  Tokens are typed by :func:`helpers.attention.token_types`, the same
    character-span typing chapter 4 uses, so a prompt that is not of this task is an error there."""
    types = token_types(tokenizer, prompt)
    last_of = {kind: max(i for i, t in enumerate(types) if t == kind)
               for kind in ("context word", "motion numbers", "color numbers")}
    return {"context word": last_of["context word"], "end of motion stream": last_of["motion numbers"],
            "end of color stream": last_of["color numbers"], "answer": len(types) - 1}


def choice_from_context_accuracy(variables: pd.DataFrame) -> float:
    """Accuracy of the best guess of the choice from the context alone (the majority choice within
    each context) on these trials: what a choice probe can reach before any number is read.  50%
    when the trials are balanced within each context."""
    majority = variables.groupby("context")["choice"].agg(lambda c: max(c.mean(), 1 - c.mean()))
    return float(majority.mul(variables["context"].value_counts(normalize=True)).sum())


def _positions(spec, T: int) -> list[int]:
    if isinstance(spec, str):
        if spec == "all":
            return list(range(T))
        if spec == "last":
            return [T - 1]
        raise ValueError(f"positions={spec!r} is not accepted: use 'all', 'last', an int or a list of ints")
    idx = [spec] if isinstance(spec, (int, np.integer)) else list(spec)
    out = []
    for p in idx:
        if not -T <= p < T:
            raise ValueError(f"position {p} is out of range for prompts of {T} tokens")
        out.append(int(p) % T)
    return out


def _layers(spec, L: int) -> list[int]:
    """Indices into the L+1 residual streams (0 = embeddings, L = last layer's output)."""
    if spec is None:
        return list(range(L + 1))
    idx = [spec] if isinstance(spec, (int, np.integer)) else list(spec)
    out = []
    for l in idx:
        if not -(L + 1) <= l <= L:
            raise ValueError(f"layer {l} is out of range: accepted are 0..{L} (0 = embeddings, "
                             f"{L} = output of the last layer) or negative indices")
        out.append(int(l) % (L + 1))
    return out


# ---- collecting activations ------------------------------------------------------------------

@torch.no_grad()
def collect_activations(model, tokenizer, trials: Sequence[Trial], streams: dict | None = None,
                        heads_position: int | None = None, batch_size: int = 32, bf16: bool = False,
                        final_norm: bool = False) -> dict[str, np.ndarray]:
    """Several selections of activations from one forward pass per batch.

    ``streams = {name: (layers, positions)}`` gives ``out[name]`` of shape
    (n_trials, n_layers_selected, n_positions_selected, d_model) (see :func:`collect_hidden_states`
    for the meaning of the indices).  ``heads_position`` (e.g. ``-1``) adds ``out['z']``: every
    head's attention output ``z`` at that position, (n_trials, n_layers, n_heads, d_head), read
    through the adapter's typed ``z`` hook point.  Everything is returned as float32 numpy.
    """
    arch = Arch(model)
    L = arch.n_layers
    streams = streams or {}
    ids = encode_equal_length(tokenizer, [t.prompt for t in trials])
    n, T = ids.shape
    sel = {k: (_layers(ls, L), _positions(ps, T)) for k, (ls, ps) in streams.items()}
    out = {k: np.zeros((n, len(ls), len(ps), arch.d_model), dtype=np.float32) for k, (ls, ps) in sel.items()}
    if heads_position is not None:
        hp = _positions(heads_position, T)[0]
        out["z"] = np.zeros((n, L, arch.n_heads, arch.d_head), dtype=np.float32)
    device = model_device(model)
    was_training = model.training
    model.eval()
    grabbed: dict = {}

    def grab_z(layer):
        def fn(z):
            grabbed[("z", layer)] = z[:, hp].float().cpu()
        return fn

    def grab_last(module, args):
        grabbed["raw_last"] = args[0].float().cpu()

    hooks = {("z", l): grab_z(l) for l in range(L)} if heads_position is not None else {}
    handle = arch.final_norm().register_forward_pre_hook(grab_last)
    try:
        with arch.hooks(hooks):
            for start in range(0, n, batch_size):
                b = ids[start:start + batch_size].to(device)
                with autocast(device, bf16):
                    hs = arch.base(input_ids=b, output_hidden_states=bool(sel)).hidden_states
                if sel:
                    stack = [h.float().cpu() for h in hs[:L]]
                    stack.append(hs[L].float().cpu() if final_norm else grabbed["raw_last"])
                    for k, (ls, ps) in sel.items():
                        out[k][start:start + len(b)] = torch.stack([stack[l][:, ps] for l in ls], 1).numpy()
                if heads_position is not None:
                    out["z"][start:start + len(b)] = torch.stack([grabbed[("z", l)] for l in range(L)], 1).numpy()
                grabbed.clear()
    finally:
        handle.remove()
        model.train(was_training)
    return out


def collect_hidden_states(model, tokenizer, trials: Sequence[Trial], layers=None, positions="all",
                          batch_size: int = 32, bf16: bool = False, final_norm: bool = False) -> np.ndarray:
    """Residual streams, (n_trials, n_layers_selected, n_positions_selected, d_model), float32.

    `layers`: indices into the ``L + 1`` streams (``None`` = all; ``0`` = embeddings, ``l`` = raw
    output of decoder layer ``l - 1``, ``L`` or ``-1`` = the last layer's output *before* the final
    norm; ``final_norm=True`` applies the final norm to index ``L``, i.e. Hugging Face's
    ``hidden_states[-1]``).  `positions`: ``'all'``, ``'last'`` (the answer position), an int or
    a list of ints (negative counts from the end).
    """
    return collect_activations(model, tokenizer, trials, {"h": (layers, positions)},
                               batch_size=batch_size, bf16=bf16, final_norm=final_norm)["h"]


# ---- embedding and its quantitative companions --------------------------------------------------

def preprocess(X: np.ndarray, n_pca: int = N_PCA) -> np.ndarray:
    """Standardise each unit (constant units stay 0), then keep the first `n_pca` principal
    components (fewer when there are fewer points or units).  Unsupervised: no labels involved."""
    X = np.asarray(X, dtype=np.float64)
    sd = X.std(0)
    Xs = (X - X.mean(0)) / np.where(sd > 1e-8 * (1 + np.abs(X).max(0)), sd, 1.0)
    k = min(n_pca, X.shape[0] - 1, X.shape[1])
    if k < 1:
        return Xs
    U, s, _ = np.linalg.svd(Xs - Xs.mean(0), full_matrices=False)
    return U[:, :k] * s[:k]


def embed_umap(X: np.ndarray, n_neighbors: int = 15, seed: int = 0, min_dist: float = 0.1,
               n_pca: int = N_PCA) -> np.ndarray:
    """Seeded 2-D UMAP of the points in `X` (after :func:`preprocess`).  A `seed` makes UMAP
    single-threaded and reproducible; `n_neighbors` is capped at n_points - 1."""
    import warnings

    import umap   # imported here: numba compiles it on first use (about 40 s per process)
    X = preprocess(X, n_pca)
    k = int(min(n_neighbors, len(X) - 1))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*overridden.*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        reducer = umap.UMAP(n_components=2, n_neighbors=k, min_dist=min_dist, random_state=seed)
        return reducer.fit_transform(X)


def silhouette_by(X: np.ndarray, labels, n_pca: int = N_PCA, preprocessed: bool = False) -> float:
    """Silhouette of the groups given by `labels` (Euclidean, on :func:`preprocess`-ed points):
    near 0 for unstructured groups, up to 1 for tight, well separated ones."""
    from sklearn.metrics import silhouette_score
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return float("nan")
    Z = X if preprocessed else preprocess(X, n_pca)
    return float(silhouette_score(Z, labels))


def shuffled_silhouettes(X: np.ndarray, labels, n_shuffles: int, seed: int = 0, n_pca: int = N_PCA) -> np.ndarray:
    """Silhouettes of the same points with the labels permuted (`n_shuffles` times): the chance level."""
    rng = np.random.default_rng([seed, 2713])
    Z = preprocess(X, n_pca)
    labels = np.asarray(labels)
    return np.array([silhouette_by(Z, rng.permutation(labels), preprocessed=True) for _ in range(n_shuffles)])


def linear_probe_accuracy(X: np.ndarray, y, cv_folds: int = 5, seed: int = 0, **kwargs) -> dict:
    """Cross-validated accuracy of an L2 logistic-regression probe (the decoder of
    :func:`helpers.decoding.decode`: standardised units, C chosen on the training folds only),
    with a 95% Wilson interval over the held-out predictions."""
    from .decoding import decode
    r = decode(X, y, cv_folds=cv_folds, seed=seed, **kwargs)
    return {"accuracy": r.accuracy, "lo": r.lo, "hi": r.hi}


def structure_table(states: dict[str, np.ndarray], variables: pd.DataFrame,
                    columns: Sequence[str] = ("context", "choice", "relevant_sign", "irrelevant_sign"),
                    cv_folds: int = 5, n_shuffles: int = 5, seed: int = 0) -> pd.DataFrame:
    """Per model and variable: silhouette of the groups, its shuffled chance level (mean and max
    over `n_shuffles` label permutations) and the cross-validated linear probe accuracy (95% CI).
    `states[model]` is (n_trials, d_model); `variables` comes from
    :func:`helpers.decoding.task_variables`."""
    rows = []
    for model, X in states.items():
        Z = preprocess(X)
        for col in columns:
            y = variables[col].to_numpy()
            sh = shuffled_silhouettes(X, y, n_shuffles, seed)
            probe = linear_probe_accuracy(X, y, cv_folds, seed)
            rows.append({"model": model, "variable": col, "silhouette": silhouette_by(Z, y, preprocessed=True),
                         "silhouette_shuffled": float(sh.mean()), "silhouette_shuffled_max": float(sh.max()),
                         "probe_accuracy": probe["accuracy"], "probe_lo": probe["lo"], "probe_hi": probe["hi"]})
    return pd.DataFrame(rows)


def representation_verdict(table: pd.DataFrame, model: str = "fine-tuned",
                           variables: Sequence[str] = ("context", "choice")) -> tuple[str, str]:
    """Lin (2024): after fine-tuning, last-layer states at the answer position are organised by
    the task variables.  For `model` and each of `variables`, *clustered* means a silhouette above
    every label shuffle's, *decodable* means a probe whose 95% CI lies above 0.5.
    Replicated: every variable is clustered and decodable.  Not replicated: none is decodable.
    Inconclusive: anything in between."""
    t = table.set_index(["model", "variable"])
    if model not in t.index.get_level_values(0):
        return "inconclusive", f"No states of the {model!r} model."
    clustered, decodable, parts = [], [], []
    for v in variables:
        r = t.loc[(model, v)]
        c = bool(r.silhouette > r.silhouette_shuffled_max)
        d = bool(r.probe_lo > 0.5)
        clustered.append(c)
        decodable.append(d)
        parts.append(f"{v}: silhouette {r.silhouette:.3f} (shuffled max {r.silhouette_shuffled_max:.3f}), "
                     f"probe {r.probe_accuracy:.1%} (95% CI {r.probe_lo:.1%}-{r.probe_hi:.1%})")
    others = []
    for m in t.index.get_level_values(0).unique():
        if m == model:
            continue
        others.append(f"{m}: " + ", ".join(f"{v} probe {t.loc[(m, v)].probe_accuracy:.1%}, silhouette "
                                           f"{t.loc[(m, v)].silhouette:.3f}" for v in variables))
    evidence = (f"{model}: " + "; ".join(parts) + "." + (" For comparison, " + "; ".join(others) + "." if others else ""))
    if all(clustered) and all(decodable):
        return "replicated", evidence
    if not any(decodable):
        return "not replicated", evidence
    return "inconclusive", evidence


# ---- figure -------------------------------------------------------------------------------------

def umap_figure(embeddings: dict[str, np.ndarray], variables: pd.DataFrame, rows=UMAP_ROWS, size: float = 2.6):
    """UMAP scatter panels: models as columns, colouring variables as rows (context, choice,
    signed relevant and irrelevant coherence)."""
    import matplotlib.pyplot as plt
    names = list(embeddings)
    fig, axes = plt.subplots(len(rows), len(names), figsize=(size * len(names) + 1.2, size * len(rows)),
                             squeeze=False)
    for i, (col, title) in enumerate(rows):
        values = variables[col].to_numpy()
        for j, name in enumerate(names):
            ax = axes[i, j]
            E = embeddings[name]
            if col in ("context", "choice"):
                words = {"context": ("motion", "color"), "choice": ("left", "right")}[col]
                for v, colour in ((0, "#1b9e77"), (1, "#d95f02")):
                    m = values == v
                    ax.scatter(E[m, 0], E[m, 1], s=7, color=colour, alpha=0.8, label=words[v], linewidths=0)
                if j == len(names) - 1:
                    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2)
            else:
                lim = float(np.abs(values).max()) or 1.0
                sc = ax.scatter(E[:, 0], E[:, 1], s=7, c=values, cmap="coolwarm", vmin=-lim, vmax=lim,
                                linewidths=0)
                if j == len(names) - 1:
                    fig.colorbar(sc, ax=ax, fraction=0.05, pad=0.02)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=10)
            if j == 0:
                ax.set_ylabel(title, fontsize=9)
    fig.tight_layout()
    return fig
