"""What every exercise checker shares: a :class:`Result` a notebook shows, calling the reader's
function (an unwritten one is "not attempted", not a failure with a traceback), a description of
where two tensors differ in the axes' own names, and the hooks a function left on a model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class Result:
    """The outcome of one check: `passed`, and a message that names what is wrong (or what was
    checked, when it passed).  A notebook shows it as one Markdown line."""
    exercise: str
    passed: bool
    message: str
    attempted: bool = True

    def __bool__(self) -> bool:
        return self.passed

    def _repr_markdown_(self) -> str:
        mark = "✅" if self.passed else ("✏️" if not self.attempted else "❌")
        return f"{mark} **{self.exercise}**: {self.message}"

    def __str__(self) -> str:
        return f"[{'ok' if self.passed else 'not yet'}] {self.exercise}: {self.message}"


class NotAttempted(Exception):
    """The reader's function still raises NotImplementedError (the exercise's stub)."""


class FunctionRaised(Exception):
    """The reader's function raised an error (kept as ``error``)."""

    def __init__(self, error: BaseException):
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error


def call(fn: Callable, *args, **kwargs):
    """`fn(*args, **kwargs)`; a stub that raises NotImplementedError becomes :class:`NotAttempted`,
    any other error :class:`FunctionRaised` (reported as a message, not a traceback)."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise NotAttempted from None
    except Exception as e:
        raise FunctionRaised(e) from e


def as_array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=float)


def where_different(got, want, axes: Sequence[str], atol: float = 1e-5, rtol: float = 1e-4) -> str | None:
    """None when `got` equals `want` (within tolerances); else a sentence: the shapes when they
    differ, else, for each axis (named by `axes`), the indices along it where some value differs
    ("head 2 of 4", "every position"), and the largest difference."""
    if got is None:
        return "your function returned None"
    g, w = as_array(got), as_array(want)
    if g.shape != w.shape:
        named = ", ".join(f"{a}={n}" for a, n in zip(axes, w.shape))
        return f"the shape is {tuple(g.shape)}, expected {tuple(w.shape)} ({named})"
    bad = ~np.isclose(g, w, atol=atol, rtol=rtol, equal_nan=True)
    if not bad.any():
        return None
    parts = []
    for i, name in enumerate(axes):
        other = tuple(j for j in range(bad.ndim) if j != i)
        idx = np.flatnonzero(bad.any(axis=other)) if other else np.flatnonzero(bad)
        if len(idx) == bad.shape[i]:
            parts.append(f"every {name}")
        else:
            shown = ", ".join(map(str, idx[:6])) + (", ..." if len(idx) > 6 else "")
            parts.append(f"{name} {shown} (of {bad.shape[i]})")
    return (f"{int(bad.sum())} of {bad.size} values differ, at " + "; ".join(parts)
            + f"; largest difference {float(np.nanmax(np.abs(g - w))):.3g}")


def hook_count(model: torch.nn.Module) -> int:
    """Forward hooks and forward pre-hooks registered on any module of `model` (transformers keeps
    some of its own, e.g. once attention weights have been asked for)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def hook_snapshot(model: torch.nn.Module) -> dict[str, frozenset]:
    """The ids of every module's forward (pre-)hooks now, to tell a reader's leftover hook from
    the ones already there."""
    return {name: frozenset(m._forward_hooks) | frozenset(m._forward_pre_hooks) for name, m in model.named_modules()}


def _new_hooks(model: torch.nn.Module, before: dict[str, frozenset]) -> dict[str, list]:
    out = {}
    for name, m in model.named_modules():
        new = [k for k in (*m._forward_hooks, *m._forward_pre_hooks) if k not in before.get(name, ())]
        if new:
            out[name] = new
    return out


def leftover_hooks(model: torch.nn.Module, before: dict[str, frozenset]) -> str | None:
    """A sentence when `model` has hooks that were not there in the snapshot `before`."""
    new = _new_hooks(model, before)
    if not new:
        return None
    n = sum(len(v) for v in new.values())
    return f"{n} hook(s) are still registered afterwards (on {', '.join(list(new)[:3])})"


def remove_new_hooks(model: torch.nn.Module, before: dict[str, frozenset]) -> None:
    """Remove the hooks added since `before` (what a wrong answer left), so that one failed check
    does not spoil the next."""
    modules = dict(model.named_modules())
    for name, keys in _new_hooks(model, before).items():
        for k in keys:
            modules[name]._forward_hooks.pop(k, None)
            modules[name]._forward_pre_hooks.pop(k, None)
