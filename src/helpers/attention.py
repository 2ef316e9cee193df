"""Attention patterns: where the answer position looks, by token type, layer and head.

Lin (2024) reports that the model trained from scratch depends most on *first-layer* heads that
attend to the numbers of the prompt, while the fine-tuned model relies on later-layer heads.  This
module measures the attention side of that claim on any GPT-2 or Llama-style model:

* :func:`token_types` types every token of a prompt (context word, motion numbers, color numbers,
  punctuation, other) from the tokenizer's character offsets, so it works for tokenizers that
  write ``+0.12`` as one, three or five tokens;
* :func:`attention_patterns` returns the attention probabilities of every layer and head (eager
  attention is switched on for the call and the original implementation always restored);
* :func:`attention_stats` runs a set of trials batch by batch and keeps only aggregates (the mass
  the answer position puts on each token type, per prompt, layer and head; the mean mass per query
  type and key type), never all patterns at once;
* :func:`first_layer_number_attention` and :func:`relevance_table` are the two tests, with
  bootstrap intervals over prompts, and :func:`number_attention_verdict` /
  :func:`relevance_verdict` turn them into verdicts computed from the numbers;
* figures, and :func:`explorer`, an ipywidgets browser of single patterns that degrades to a
  static figure where no Python kernel runs (the rendered book).

The *answer position* is the last prompt token (the ``:`` after ``Answer``), where the model's
choice is read.  Attention masses at that position sum to 1 over the keys (all earlier tokens and
itself), so the mass on a token type is directly comparable with the share of that type among the
keys: the mass that *uniform* attention would give it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .arch import Arch, eager_attention  # noqa: F401  (re-exported: chapters use it from here)
from .evaluation import encode_prompts, pad_batch
from .hardware import autocast, model_device
from .progress import bar as progress_bar
from .task import Trial

TOKEN_TYPES = ("context word", "motion numbers", "color numbers", "punctuation", "other")
NUMBER_TYPES = ("motion numbers", "color numbers")
TYPE_COLORS = {"context word": "#9467bd", "motion numbers": "#1f77b4", "color numbers": "#ff7f0e",
               "punctuation": "#7f7f7f", "other": "#c7c7c7"}
MODEL_COLORS = {"fine-tuned": "#1f77b4", "scratch": "#d62728", "pretrained": "#7f7f7f"}
# when a token mixes characters of several parts (a tokenizer that merges "2." say), the type
# covering most of its non-space characters wins; ties go to the first type in this order
_PRIORITY = ("motion numbers", "color numbers", "context word", "punctuation", "other")

_PROMPT_RE = re.compile(
    r"^Context: (?P<context>\w+)\. "
    r"Motion: (?P<motion>[+-]\d+\.\d+(?: [+-]\d+\.\d+)*)\. "
    r"Color: (?P<color>[+-]\d+\.\d+(?: [+-]\d+\.\d+)*)\. Answer:$")
_NUMBER_RE = re.compile(r"[+-]\d+\.\d+")


# ---- token types ------------------------------------------------------------------------------

def char_types(prompt: str) -> list[str | None]:
    """The type of every character of a task prompt (None for whitespace).

    The prompt format is :func:`helpers.task.make_prompt`'s: ``Context: <word>. Motion: <numbers>.
    Color: <numbers>. Answer:``.  A number is its sign, digits and decimal point (``+0.12``); the
    periods that end the streams and the colons are punctuation; the keywords are "other".
    """
    m = _PROMPT_RE.match(prompt)
    if m is None:
        raise ValueError(f"not a task prompt: {prompt!r}; expected the format of helpers.task.make_prompt, "
                         "'Context: <word>. Motion: <numbers>. Color: <numbers>. Answer:'")
    out: list[str | None] = [None if c.isspace() else ("punctuation" if c in ".:" else "other")
                             for c in prompt]
    for i in range(*m.span("context")):
        out[i] = "context word"
    for group, kind in (("motion", "motion numbers"), ("color", "color numbers")):
        start = m.start(group)
        for num in _NUMBER_RE.finditer(m.group(group)):
            for i in range(start + num.start(), start + num.end()):
                out[i] = kind
    return out


def _offsets(tokenizer, prompt: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids (exactly ``tokenizer.encode(prompt)``) and each token's character span."""
    ids = tokenizer.encode(prompt)
    try:
        enc = tokenizer(prompt, return_offsets_mapping=True)
        offsets = [tuple(o) for o in enc["offset_mapping"]]
        if list(enc["input_ids"]) == list(ids):
            return ids, offsets
    except (NotImplementedError, KeyError, TypeError, ValueError):
        pass
    # fallback for tokenizers without offsets: decode growing prefixes (special tokens: empty span)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    offsets, pos = [], 0
    for i in range(len(ids)):
        if ids[i] in special:
            offsets.append((pos, pos))
            continue
        text = tokenizer.decode([t for t in ids[: i + 1] if t not in special])
        end = min(len(text), len(prompt))
        offsets.append((pos, end))
        pos = end
    return ids, offsets


def token_types(tokenizer, prompt: str) -> list[str]:
    """A type from :data:`TOKEN_TYPES` for every token of ``tokenizer.encode(prompt)``.

    Each token gets the type that covers most of its non-space characters (ties: numbers first).
    Special tokens (empty span, e.g. a BOS) are "other"; a token made only of whitespace is a
    separator, "punctuation".
    """
    chars = char_types(prompt)
    _, offsets = _offsets(tokenizer, prompt)
    out = []
    for s, e in offsets:
        if e <= s:
            out.append("other")
            continue
        kinds = [k for k in chars[s:e] if k is not None]
        if not kinds:
            out.append("punctuation")
            continue
        counts = {k: kinds.count(k) for k in set(kinds)}
        best = max(counts.values())
        out.append(next(k for k in _PRIORITY if counts.get(k) == best))
    return out


def token_labels(tokenizer, prompt: str) -> list[str]:
    """Each token of the prompt as readable text (spaces shown as a visible mark)."""
    return [tokenizer.decode([i]).replace(" ", "\u2423") for i in tokenizer.encode(prompt)]


# ---- attention probabilities --------------------------------------------------------------------

@torch.no_grad()
def attention_patterns(model, ids, bf16: bool = False) -> torch.Tensor:
    """Attention probabilities of every layer and head: (n_layers, batch, n_heads, q_pos, k_pos).

    `ids` is (batch, pos) or (pos,).  Rows are right-padded sequences (causal attention: a real
    token never sees the pads after it).  With grouped key/value heads (Llama) every query head
    still has its own pattern, so the output has ``n_heads`` heads.  Returned as fp32 on the CPU
    (under `bf16` autocast the probabilities themselves are computed in bf16).
    """
    ids = torch.as_tensor(ids)
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        with eager_attention(model), autocast(device, bf16):
            out = model.base_model(input_ids=ids.to(device), output_attentions=True)
    finally:
        model.train(was_training)
    att = out.attentions
    if not att:
        raise RuntimeError(f"{type(model).__name__} returned no attention weights with eager attention")
    return torch.stack([a.float().cpu() for a in att])


def _type_onehot(types: Sequence[Sequence[str]], n_pos: int) -> torch.Tensor:
    """(batch, n_pos, n_types) one-hot of each position's type (zeros at padding)."""
    out = torch.zeros(len(types), n_pos, len(TOKEN_TYPES))
    for b, ts in enumerate(types):
        for p, t in enumerate(ts):
            out[b, p, TOKEN_TYPES.index(t)] = 1.0
    return out


def _as_per_prompt(types, batch: int) -> list[list[str]]:
    if len(types) and isinstance(types[0], str):
        return [list(types)] * batch
    if len(types) != batch:
        raise ValueError(f"got types for {len(types)} prompts and patterns for {batch}")
    return [list(t) for t in types]


def answer_mass(patterns: torch.Tensor, types) -> np.ndarray:
    """Mass that each prompt's answer position (its last typed token) puts on each token type:
    array (batch, n_layers, n_heads, n_types), types in the order of :data:`TOKEN_TYPES`."""
    L, B, H, Q, K = patterns.shape
    types = _as_per_prompt(types, B)
    last = torch.tensor([len(t) - 1 for t in types])
    rows = patterns[:, torch.arange(B), :, last, :]              # (B, L, H, K)
    onehot = _type_onehot(types, K)
    return torch.einsum("blhk,bkt->blht", rows.float(), onehot).numpy()


def query_type_mass(patterns: torch.Tensor, types) -> tuple[np.ndarray, np.ndarray]:
    """Summed mass from each query type to each key type, and the number of queries of each type:
    (n_layers, n_heads, n_types_query, n_types_key) sums and (n_types,) counts; divide for means."""
    L, B, H, Q, K = patterns.shape
    types = _as_per_prompt(types, B)
    q1 = _type_onehot(types, Q)
    k1 = _type_onehot(types, K)
    per_key = torch.einsum("lbhqk,bkt->lbhqt", patterns.float(), k1)
    sums = torch.einsum("lbhqt,bqs->lhst", per_key, q1).numpy()
    return sums, q1.sum((0, 1)).numpy()


def attention_by_type(patterns: torch.Tensor, types, query: str = "answer") -> pd.DataFrame:
    """Tidy mean attention mass per layer, head and key type.

    ``query="answer"``: mass of the answer position (each prompt's last typed token), mean over
    prompts: columns layer, head, type, mass.  ``query="all"``: mass from every query position,
    mean over the queries of each type: columns layer, head, query_type, type, mass.
    `types` is one list for all prompts or one list per prompt (see :func:`token_types`).
    """
    if query == "answer":
        return _tidy(answer_mass(patterns, types).mean(0))
    if query == "all":
        sums, counts = query_type_mass(patterns, types)
        return _tidy_query(sums, counts)
    raise ValueError(f"query={query!r} is not accepted: accepted values are 'answer', 'all'")


def _tidy(mass: np.ndarray) -> pd.DataFrame:
    L, H, T = mass.shape
    li, hi, ti = np.meshgrid(np.arange(L), np.arange(H), np.arange(T), indexing="ij")
    return pd.DataFrame({"layer": li.ravel(), "head": hi.ravel(),
                         "type": np.array(TOKEN_TYPES)[ti.ravel()], "mass": mass.ravel()})


def _tidy_query(sums: np.ndarray, counts: np.ndarray) -> pd.DataFrame:
    L, H, S, T = sums.shape
    rows = []
    for s in range(S):
        if counts[s] == 0:
            continue
        d = _tidy(sums[:, :, s, :] / counts[s])
        d.insert(2, "query_type", TOKEN_TYPES[s])
        rows.append(d)
    return pd.concat(rows, ignore_index=True)


# ---- many prompts, aggregated batch by batch ------------------------------------------------------

@dataclass
class AttentionStats:
    """What :func:`attention_stats` keeps of the patterns of a set of trials."""
    answer: np.ndarray          # (n_prompts, n_layers, n_heads, n_types): answer position's mass per type
    key_share: np.ndarray       # (n_prompts, n_types): share of each type among the answer's keys
    contexts: np.ndarray        # (n_prompts,) "motion" / "color"
    query_sums: np.ndarray      # (n_layers, n_heads, n_types, n_types) summed mass query type -> key type
    query_counts: np.ndarray    # (n_types,) queries of each type
    meta: dict = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return self.answer.shape[1]

    @property
    def n_heads(self) -> int:
        return self.answer.shape[2]

    def mass(self, kinds: Sequence[str]) -> np.ndarray:
        """(n_prompts, n_layers, n_heads) mass of the answer position on the given types."""
        return self.answer[..., [TOKEN_TYPES.index(k) for k in kinds]].sum(-1)

    def share(self, kinds: Sequence[str]) -> np.ndarray:
        """(n_prompts,) share of the given types among the answer position's keys."""
        return self.key_share[:, [TOKEN_TYPES.index(k) for k in kinds]].sum(-1)

    def relevance(self) -> np.ndarray:
        """(n_prompts, n_layers, n_heads): mass on the relevant stream's numbers minus mass on
        the irrelevant stream's (the relevant stream is the one the context names)."""
        motion = self.mass(["motion numbers"])
        color = self.mass(["color numbers"])
        sign = np.where(self.contexts == "motion", 1.0, -1.0)[:, None, None]
        return sign * (motion - color)

    def table(self) -> pd.DataFrame:
        """Mean over prompts of the answer position's mass per layer, head and type."""
        return _tidy(self.answer.mean(0))

    def query_table(self) -> pd.DataFrame:
        """Mean mass from every query position, per query type and key type."""
        return _tidy_query(self.query_sums, self.query_counts)


def stats_from_patterns(patterns: torch.Tensor, types, contexts: Sequence[str]) -> AttentionStats:
    """:class:`AttentionStats` of one batch of patterns (n_layers, batch, n_heads, q, k), with each
    prompt's token types (see :func:`token_types`) and context."""
    L, B, H, Q, K = patterns.shape
    types = _as_per_prompt(types, B)
    if len(contexts) != B:
        raise ValueError(f"got {len(contexts)} contexts for {B} prompts")
    sums, counts = query_type_mass(patterns, types)
    share = np.stack([_type_onehot([t], len(t))[0].mean(0).numpy() for t in types])
    return AttentionStats(answer=answer_mass(patterns, types).astype(np.float32), key_share=share,
                          contexts=np.asarray(contexts), query_sums=sums, query_counts=counts,
                          meta={"n_prompts": B, "n_layers": L, "n_heads": H,
                                "tokens_per_prompt": sorted({len(t) for t in types})})


def concat_stats(parts: Sequence[AttentionStats]) -> AttentionStats:
    """Stats of several batches of the same model as one."""
    if not parts:
        raise ValueError("concat_stats needs at least one batch")
    meta = dict(parts[0].meta)
    meta["n_prompts"] = sum(p.answer.shape[0] for p in parts)
    meta["tokens_per_prompt"] = sorted(set().union(*(p.meta.get("tokens_per_prompt", []) for p in parts)))
    return AttentionStats(answer=np.concatenate([p.answer for p in parts]),
                          key_share=np.concatenate([p.key_share for p in parts]),
                          contexts=np.concatenate([p.contexts for p in parts]),
                          query_sums=sum(p.query_sums for p in parts),
                          query_counts=sum(p.query_counts for p in parts), meta=meta)


def attention_stats(model, tokenizer, trials: Sequence[Trial], batch_size: int = 16, bf16: bool = False,
                    progress: bool = False, desc: str = "attention") -> AttentionStats:
    """Patterns of all `trials`, computed a batch at a time and reduced to :class:`AttentionStats`
    (memory: one batch of patterns, never all of them)."""
    if not trials:
        raise ValueError("attention_stats needs at least one trial")
    prompts = [t.prompt for t in trials]
    seqs = encode_prompts(tokenizer, prompts)
    types = [token_types(tokenizer, p) for p in prompts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    parts = []
    for s in progress_bar(range(0, len(trials), batch_size), show=progress, desc=desc, leave=False):
        idx = range(s, min(s + batch_size, len(trials)))
        ids, _ = pad_batch([seqs[i] for i in idx], pad)
        pats = attention_patterns(model, ids, bf16=bf16)
        parts.append(stats_from_patterns(pats, [types[i] for i in idx], [trials[i].context for i in idx]))
        del pats
    out = concat_stats(parts)
    out.meta["bf16"] = bf16
    return out


# ---- statistics ---------------------------------------------------------------------------------

def bootstrap_means(values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95):
    """Mean over rows and its percentile bootstrap interval, for every column at once (the same
    resamples of rows for all columns): three arrays of shape ``values.shape[1:]``."""
    values = np.asarray(values, dtype=float)
    n = values.shape[0]
    flat = values.reshape(n, -1)
    if n == 0:
        nan = np.full(values.shape[1:], np.nan)
        return nan, nan, nan
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)      # resampling with replacement
    boots = counts @ flat / n                                            # (n_boot, columns)
    a = (1 - level) / 2
    lo, hi = np.quantile(boots, a, axis=0), np.quantile(boots, 1 - a, axis=0)
    shape = values.shape[1:]
    return flat.mean(0).reshape(shape), lo.reshape(shape), hi.reshape(shape)


def _p_greater(values: np.ndarray) -> np.ndarray:
    """One-sided one-sample t-test p-values (mean > 0) for each column of `values` (n, m)."""
    from scipy import stats
    n = values.shape[0]
    mean = values.mean(0)
    sd = values.std(0, ddof=1) if n > 1 else np.zeros(values.shape[1])
    p = np.where(mean > 0, 0.0, 1.0)            # zero variance: certain either way
    ok = sd > 1e-12
    if ok.any():
        t = mean[ok] / (sd[ok] / np.sqrt(n))
        p[ok] = stats.t.sf(t, df=n - 1)
    return p


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (family-wise error control over all entries)."""
    p = np.asarray(p, dtype=float)
    flat = p.ravel()
    order = np.argsort(flat)
    m = len(flat)
    adj = np.maximum.accumulate((m - np.arange(m)) * flat[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out.reshape(p.shape)


def first_layer_number_attention(stats: Mapping[str, AttentionStats], layer: int = 0, n_boot: int = 2000,
                                 seed: int = 0) -> pd.DataFrame:
    """Claim (a): share of the answer position's attention on number tokens (motion + color) in
    layer `layer`, per model, against the share of number tokens among the keys (what uniform
    attention would give).  ``mass`` is the mean over the layer's heads; ``excess`` = mass minus
    the uniform share, per prompt; intervals are percentile bootstraps over prompts.  ``best_head``
    is the layer's head with the most mass on numbers."""
    rows = []
    for name, s in stats.items():
        per_head = s.mass(NUMBER_TYPES)[:, layer, :]          # (n, heads)
        base = s.share(NUMBER_TYPES)                          # (n,)
        mass = per_head.mean(1)
        m, lo, hi = bootstrap_means(mass[:, None], n_boot, seed)
        e, elo, ehi = bootstrap_means((mass - base)[:, None], n_boot, seed)
        hm = per_head.mean(0)
        best = int(np.argmax(hm))
        bm, blo, bhi = bootstrap_means(per_head[:, best:best + 1], n_boot, seed)
        rows.append({"model": name, "layer": layer, "n_prompts": len(mass), "mass": m[0], "mass_lo": lo[0],
                     "mass_hi": hi[0], "uniform": float(base.mean()), "excess": e[0], "excess_lo": elo[0],
                     "excess_hi": ehi[0], "best_head": best, "best_head_mass": bm[0],
                     "best_head_lo": blo[0], "best_head_hi": bhi[0]})
    return pd.DataFrame(rows)


def paired_difference(a: AttentionStats, b: AttentionStats, layer: int = 0, n_boot: int = 2000,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean over prompts of (a's minus b's) layer-`layer` head-mean mass on numbers, with a paired
    bootstrap interval; the two must have analysed the same prompts with the same tokenizer."""
    if a.answer.shape[0] != b.answer.shape[0] or not np.allclose(a.key_share, b.key_share):
        raise ValueError("paired_difference needs the same prompts, tokenised the same way, for both models")
    d = a.mass(NUMBER_TYPES)[:, layer].mean(1) - b.mass(NUMBER_TYPES)[:, layer].mean(1)
    m, lo, hi = bootstrap_means(d[:, None], n_boot, seed)
    return float(m[0]), float(lo[0]), float(hi[0])


def number_profile(s: AttentionStats, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per layer: mean over heads of the answer position's mass on numbers minus the uniform share,
    with a bootstrap interval over prompts (columns layer, excess, lo, hi)."""
    ex = s.mass(NUMBER_TYPES).mean(2) - s.share(NUMBER_TYPES)[:, None]     # (n, layers)
    m, lo, hi = bootstrap_means(ex, n_boot, seed)
    return pd.DataFrame({"layer": np.arange(s.n_layers), "excess": m, "lo": lo, "hi": hi})


def relevance_table(s: AttentionStats, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Claim (b), per head: mean over prompts of (mass on the relevant stream's numbers - mass on
    the irrelevant stream's) at the answer position, a 95% percentile bootstrap interval, a
    one-sided t-test p-value (mean > 0), its Holm-adjusted value over all heads of the model, and
    ``significant`` = adjusted p < `alpha` (family-wise error rate `alpha` over the heads)."""
    r = s.relevance()                                                      # (n, L, H)
    m, lo, hi = bootstrap_means(r, n_boot, seed)
    p = _p_greater(r.reshape(len(r), -1)).reshape(m.shape)
    p_adj = holm(p)
    L, H = m.shape
    li, hi_ = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    return pd.DataFrame({"layer": li.ravel(), "head": hi_.ravel(), "relevance": m.ravel(), "lo": lo.ravel(),
                         "hi": hi.ravel(), "p": p.ravel(), "p_holm": p_adj.ravel(),
                         "significant": (p_adj < alpha).ravel(), "n_prompts": len(r)})


# ---- verdicts -----------------------------------------------------------------------------------

MARGIN = 0.02   # smallest attention shift (share of a head's mass) that counts as an effect


def number_attention_verdict(table: pd.DataFrame, scratch: str = "scratch", finetuned: str = "fine-tuned",
                             difference: tuple[float, float, float] | None = None,
                             margin: float = MARGIN) -> tuple[str, str]:
    """Claim (a): the scratch model's first-layer heads attend to the numbers.

    The test is on the scratch model's layer-0 head-mean excess of mass on numbers over the
    uniform share (bootstrap interval over prompts): **replicated** when the whole interval lies at
    or above `margin` (confidently a material excess, not a rounding-size one); **not replicated**
    when the whole interval lies below `margin` (confidently no material excess); **inconclusive**
    when the interval straddles `margin`.  The fine-tuned model's value and the paired scratch -
    fine-tuned `difference` are reported as evidence."""
    t = table.set_index("model")
    if scratch not in t.index:
        return "inconclusive", f"No attention statistics for the {scratch!r} model."
    r = t.loc[scratch]

    def describe(name, row):
        return (f"{name}: layer-{int(row['layer'])} heads put {row['mass']:.1%} of the answer position's "
                f"attention on number tokens (95% CI {row['mass_lo']:.1%} to {row['mass_hi']:.1%}) against "
                f"{row['uniform']:.1%} under uniform attention, an excess of {row['excess']:+.1%} "
                f"({row['excess_lo']:+.1%} to {row['excess_hi']:+.1%}); its most number-bound head is head "
                f"{int(row['best_head'])} with {row['best_head_mass']:.1%}.")
    parts = [describe(scratch, r)]
    if finetuned in t.index:
        parts.append(describe(finetuned, t.loc[finetuned]))
    if difference is not None:
        d, lo, hi = difference
        parts.append(f"Scratch minus fine-tuned (same prompts): {d:+.1%} (95% CI {lo:+.1%} to {hi:+.1%}).")
    evidence = " ".join(parts) + (f" ({int(r['n_prompts'])} test prompts; an excess counts from "
                                  f"{margin:.0%} of the attention mass.)")
    if r["excess_lo"] >= margin:
        return "replicated", evidence
    if r["excess_hi"] < margin:
        return "not replicated", evidence
    return "inconclusive", evidence


def relevance_verdict(table: pd.DataFrame, model: str = "", margin: float = MARGIN, top: int = 5) -> tuple[str, str]:
    """Claim (b): the answer position attends more to the relevant stream's numbers.

    **Replicated** when at least one head's relevance is significantly positive (Holm-adjusted, see
    :func:`relevance_table`) and at least `margin` on average; **not replicated** when every head's
    interval lies below `margin` (no head moves even `margin` of its attention toward the relevant
    numbers); **inconclusive** otherwise."""
    who = f"{model}: " if model else ""
    if table.empty:
        return "inconclusive", f"{who}no heads were measured."
    hits = table[table["significant"] & (table["relevance"] >= margin)].sort_values("relevance", ascending=False)
    best = table.sort_values("relevance", ascending=False).head(top)

    def fmt(d):
        return ", ".join(f"L{int(r['layer'])}H{int(r['head'])} {r['relevance']:+.1%} "
                         f"({r['lo']:+.1%} to {r['hi']:+.1%})" for _, r in d.iterrows())
    n_heads, n = len(table), int(table["n_prompts"].iloc[0])
    n_sig = int(table["significant"].sum())
    head = (f"{who}{n_sig} of {n_heads} heads attend significantly more to the relevant stream's numbers "
            f"than to the irrelevant stream's (Holm-adjusted over heads, {n} prompts), {len(hits)} of them by "
            f"at least {margin:.0%} of their attention")
    if len(hits):
        return "replicated", head + f"; strongest: {fmt(hits.head(top))}."
    evidence = head + f"; largest means: {fmt(best)}."
    if float(table["hi"].max()) < margin:
        return "not replicated", evidence + f" Every head's 95% interval lies below {margin:.0%}."
    return "inconclusive", evidence


# ---- figures ------------------------------------------------------------------------------------

def _model_color(name: str):
    key = "scratch" if "scratch" in name else ("pretrained" if "pretrained" in name else "fine-tuned")
    return MODEL_COLORS[key]


def _layer_ticks(ax, n_layers: int, axis: str = "y") -> None:
    step = max(1, int(np.ceil(n_layers / 15)))
    (ax.set_yticks if axis == "y" else ax.set_xticks)(range(0, n_layers, step))


def number_heatmaps(stats: Mapping[str, AttentionStats]):
    """Layer x head heatmaps of the answer position's mass on number tokens, one per model, on a
    shared scale whose white point is the uniform share (red: more than uniform attention would
    give the numbers, blue: less)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm
    n = len(stats)
    L = max(s.n_layers for s in stats.values())
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n + 1.4, min(0.2 * L + 2.2, 9.0)), squeeze=False)
    maps = {k: s.mass(NUMBER_TYPES).mean(0) for k, s in stats.items()}
    uniform = float(np.mean([s.share(NUMBER_TYPES).mean() for s in stats.values()]))
    norm = TwoSlopeNorm(vcenter=min(max(uniform, 1e-3), 1 - 1e-3), vmin=0.0, vmax=1.0)
    for ax, (name, m) in zip(axes[0], maps.items()):
        im = ax.imshow(m, aspect="auto", cmap="RdBu_r", norm=norm, origin="lower")
        ax.set_title(f"{name}\n(uniform: {stats[name].share(NUMBER_TYPES).mean():.0%})", fontsize=9)
        ax.set_xlabel("head")
        ax.set_xticks(range(m.shape[1]))
        _layer_ticks(ax, m.shape[0])
        ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("layer")
    cb = fig.colorbar(im, ax=list(axes[0]), shrink=0.85)
    cb.set_label(f"attention mass on numbers (white: uniform, {uniform:.0%})", fontsize=8)
    return fig


_STACK_ORDER = ("motion numbers", "color numbers", "context word", "punctuation", "other")


def type_bars(stats: Mapping[str, AttentionStats]):
    """Per model, per layer: the answer position's attention mass per token type (mean over heads
    and prompts), stacked; the dotted line is the number tokens' uniform share."""
    import matplotlib.pyplot as plt
    n = len(stats)
    fig, axes = plt.subplots(n, 1, figsize=(7.5, 2.0 * n + 0.9), squeeze=False, sharey=True)
    for ax, (name, s) in zip(axes[:, 0], stats.items()):
        m = s.answer.mean((0, 2))                                   # (layers, types)
        bottom = np.zeros(s.n_layers)
        for t in _STACK_ORDER:             # numbers at the bottom: their top meets the dotted line
            i = TOKEN_TYPES.index(t)
            ax.bar(np.arange(s.n_layers), m[:, i], bottom=bottom, color=TYPE_COLORS[t], label=t, width=0.85)
            bottom += m[:, i]
        ax.axhline(s.share(NUMBER_TYPES).mean(), color="k", ls=":", lw=0.8)
        ax.set_title(name, fontsize=9, loc="left")
        ax.set_ylabel("mass")
        ax.set_xlim(-0.6, s.n_layers - 0.4)
        _layer_ticks(ax, s.n_layers, axis="x")
        ax.set_ylim(0, 1)
    axes[-1, 0].set_xlabel("layer")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, ncol=len(TOKEN_TYPES), loc="upper center", frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return fig


def profile_figure(profiles: Mapping[str, pd.DataFrame]):
    """Per layer: mean-over-heads excess of mass on numbers over the uniform share (bands: 95%
    bootstrap intervals over prompts), one line per model."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for name, d in profiles.items():
        c = _model_color(name)
        ax.plot(d["layer"], d["excess"], "-o", ms=3, color=c, label=name)
        ax.fill_between(d["layer"], d["lo"], d["hi"], color=c, alpha=0.2, lw=0)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("layer")
    _layer_ticks(ax, int(max(d["layer"].max() for d in profiles.values())) + 1, axis="x")
    ax.set_ylabel("mass on numbers - uniform share")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def relevance_heatmaps(tables: Mapping[str, pd.DataFrame]):
    """Layer x head heatmaps of mean (relevant - irrelevant) number mass at the answer position;
    black dots: significantly positive heads (Holm-adjusted)."""
    import matplotlib.pyplot as plt
    n = len(tables)
    L = max(int(t["layer"].max()) + 1 for t in tables.values())
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n + 1.2, min(0.2 * L + 2.0, 9.0)), squeeze=False)
    maps = {k: t.pivot(index="layer", columns="head", values="relevance").to_numpy() for k, t in tables.items()}
    vmax = max(float(np.abs(m).max()) for m in maps.values()) or 1e-3
    for ax, (name, m) in zip(axes[0], maps.items()):
        im = ax.imshow(m, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax, origin="lower")
        sig = tables[name][tables[name]["significant"]]
        ax.plot(sig["head"], sig["layer"], "k.", ms=5)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("head")
        ax.set_xticks(range(m.shape[1]))
        _layer_ticks(ax, m.shape[0])
        ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("layer")
    fig.colorbar(im, ax=list(axes[0]), shrink=0.85, label="mass on relevant - irrelevant numbers")
    return fig


def pattern_figure(pattern: np.ndarray, labels: Sequence[str], types: Sequence[str], title: str = "",
                   ax=None):
    """One head's attention pattern, query (rows) x key (columns), tokens as tick labels coloured
    by type; the last row is the answer position."""
    import matplotlib.pyplot as plt
    pattern = np.asarray(pattern, dtype=float)
    n = pattern.shape[0]
    if ax is None:
        size = min(3.0 + 0.13 * n, 10.0)
        fig, ax = plt.subplots(figsize=(size + 1.0, size))
    else:
        fig = ax.figure
    masked = np.ma.masked_where(np.triu(np.ones_like(pattern, dtype=bool), 1), pattern)
    im = ax.imshow(masked, cmap="Blues", vmin=0, vmax=max(float(pattern.max()), 1e-6))
    fs = 7 if n <= 30 else 5
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(labels[:n], rotation=90, fontsize=fs, family="monospace")
    ax.set_yticklabels(labels[:n], fontsize=fs, family="monospace")
    for tick, t in zip(ax.get_xticklabels(), types):
        tick.set_color(TYPE_COLORS[t] if t != "other" else "#444")
    for tick, t in zip(ax.get_yticklabels(), types):
        tick.set_color(TYPE_COLORS[t] if t != "other" else "#444")
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.7, label="attention probability")
    handles = [plt.Line2D([], [], ls="", marker="s", color=TYPE_COLORS[t], label=t) for t in TOKEN_TYPES]
    ax.legend(handles=handles, fontsize=6, loc="upper right", frameon=True)
    return fig


def example_pattern(model, tokenizer, trial: Trial, layer: int, head: int, title: str = "", bf16: bool = False):
    """:func:`pattern_figure` of one head on one trial."""
    ids = tokenizer.encode(trial.prompt)
    pat = attention_patterns(model, torch.tensor([ids]), bf16=bf16)[layer, 0, head].numpy()
    return pattern_figure(pat, token_labels(tokenizer, trial.prompt), token_types(tokenizer, trial.prompt),
                          title or f"layer {layer}, head {head} ({trial.context} context)")


# ---- interactive explorer ----------------------------------------------------------------------

STATIC_NOTE = ("Attention explorer: interactive only in a running Jupyter session (the rendered "
               "book cannot run Python callbacks); the figure below shows its initial state.")


def _explorer_class():
    import ipywidgets as widgets

    class Explorer(widgets.VBox):
        """The explorer's widget; its plain-text form (what a static page shows) says how to use it."""

        def __repr__(self):
            return STATIC_NOTE
    return Explorer


def explorer(models: Mapping[str, tuple], trials: Sequence[Trial], bf16: bool = False,
             model: str | None = None, layer: int = 0, head: int = 0, prompt: int = 0):
    """An ipywidgets browser of single attention patterns: dropdowns for model, layer and head, a
    slider for the prompt; the figure is redrawn on every change (patterns of a prompt are
    computed once per model and cached).  `models` maps a name to ``(model, tokenizer)``.

    Returns the widget (display it in a notebook).  ``widget.figure()`` draws the current state as
    a static matplotlib figure, which is what a rendered page without a kernel should show."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    if not models or not trials:
        raise ValueError("explorer needs at least one model and one trial")
    names = list(models)
    dims = {k: (Arch(m).n_layers, Arch(m).n_heads) for k, (m, _) in models.items()}
    model = names[0] if model is None else model
    if model not in models:
        raise ValueError(f"model={model!r} is not accepted: accepted values are {names}")
    w_model = widgets.Dropdown(options=names, value=model, description="model")
    w_layer = widgets.Dropdown(options=list(range(dims[model][0])), value=layer, description="layer")
    w_head = widgets.Dropdown(options=list(range(dims[model][1])), value=head, description="head")
    w_prompt = widgets.IntSlider(value=prompt, min=0, max=len(trials) - 1, description="prompt",
                                 continuous_update=False)
    out = widgets.Output()
    cache: dict[tuple[str, int], np.ndarray] = {}

    def patterns(name: str, i: int) -> np.ndarray:
        if (name, i) not in cache:
            m, tok = models[name]
            ids = torch.tensor([tok.encode(trials[i].prompt)])
            cache[(name, i)] = attention_patterns(m, ids, bf16=bf16)[:, 0].numpy()
        return cache[(name, i)]

    def figure():
        name, i = w_model.value, w_prompt.value
        _, tok = models[name]
        t = trials[i]
        pat = patterns(name, i)[w_layer.value, w_head.value]
        title = (f"{name}, layer {w_layer.value}, head {w_head.value}; prompt {i} "
                 f"({t.context} context, answer{t.answer!r})")
        return pattern_figure(pat, token_labels(tok, t.prompt), token_types(tok, t.prompt), title)

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
