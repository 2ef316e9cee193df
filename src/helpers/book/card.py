"""The card at the top of every chapter: which profile, model sources and sizes produced it."""
from __future__ import annotations

import sys
import time


def run_card(study=None, models: bool = True, **params) -> None:
    """Display what produced this chapter: the profile and the study's sources (when the chapter
    has a `study`; not with ``models=False``), the study's overrides, and the chapter's own
    parameters given as keywords."""
    from IPython.display import Markdown, display

    from helpers.models.sources import TINY, base_of
    profile = study.profile if study is not None else params.pop("profile", "?")
    params.pop("profile", None)
    sources = {k: v for k, v in params.items() if "source" in k}
    if study is not None and models:
        sources = {"pretrained_source": study.pretrained_source, "scratch_source": study.scratch_source,
                   **sources}
    rest = {k: v for k, v in params.items() if k not in sources}
    lines = [f"> **Produced by profile `{profile}`** on {time.strftime('%Y-%m-%d')} ·"
             f" python {sys.version.split()[0]}"]
    if study is not None and study.overrides:
        lines.append("> **Overrides of the profile:** " + ", ".join(f"{k} = `{v}`" for k, v in study.overrides.items()))
    if sources:
        lines.append("> **Model sources:** " + ", ".join(f"{k} = `{v}`" for k, v in sources.items()))
    if rest:
        lines.append("> **Sizes and settings:** " + ", ".join(f"{k} = `{v}`" for k, v in rest.items()))
    flat = [s for v in sources.values() if v is not None
            for s in (list(v.values()) if isinstance(v, dict) else v if isinstance(v, list) else [v])]
    if any(base_of(str(v)) in TINY for v in flat):
        lines.append("> **This profile uses tiny random models (not pretrained): its numbers test the "
                     "machinery only and say nothing about the papers' claims.**")
    display(Markdown("\n>\n".join(lines)))
