"""Chapters 9-10 on Prakash et al.'s own models, the path the ``paper`` profile takes
(``et_base_source``: Llama-7B; ``et_variant_sources``: Vicuna-7B, Goat-7B as a LoRA adapter on
Llama-7B, FLoat-7B), run here on tiny stand-ins: a tiny random Llama saved as a checkpoint folder
is the base, two perturbed copies are Vicuna and FLoat, and a LoRA adapter made in the test on the
base is Goat (``lora:<base folder>+<adapter folder>``).  Every other parameter comes from the smoke
profile, so the chapters take seconds; the paper profile's hub ids stop before any compute."""
from __future__ import annotations

import json

import nbformat
import pytest
import torch

from helpers.book.chapters import chapter_parameters
from helpers.book.runner import preflight, resolve_parameters, run_chapter
from helpers.config.parameters import STUDY_PARAMETERS
from helpers.config.profiles import profile_values
from helpers.core.errors import ParameterError, SourceUnavailable
from helpers.models import lora
from helpers.models.sources import load_source, source_key
from helpers.study import Study

SOURCE_PARAMETERS = ("pretrained_source", "scratch_source", "tokenizer_sources", "et_base_source",
                     "et_variant_sources")


def _save(model, tok, folder):
    model.save_pretrained(str(folder), safe_serialization=True)
    tok.save_pretrained(str(folder))
    return str(folder)


def _perturbed(folder, out, seed):
    model, tok = load_source(folder)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    return _save(model, tok, out)


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """The paper profile's four models as tiny Llama stand-ins (grouped key/value heads)."""
    root = tmp_path_factory.mktemp("prakash-stand-ins")
    base, tok = load_source("tiny-llama", seed=0)
    assert base.config.num_key_value_heads < base.config.num_attention_heads
    llama = _save(base, tok, root / "llama-7b")
    wrapped, _ = lora.add_lora(load_source(llama)[0], rank=2, seed=0)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    lora.save_adapter(wrapped, root / "goat-lora-7b")
    return {"et_base_source": llama,
            "et_variant_sources": {"Vicuna-7B": _perturbed(llama, root / "vicuna-7b", 2),
                                   "Goat-7B": f"lora:{llama}+{root / 'goat-lora-7b'}",
                                   "FLoat-7B": _perturbed(llama, root / "float-7b", 3)}}


def _overrides(chapter: str, stand_ins: dict) -> dict:
    """The smoke profile's sizes and tiny GPT-2 for Lin's arms, the stand-ins for Prakash's models:
    every parameter chapter `chapter` accepts that is not a source."""
    accepted = set(chapter_parameters(chapter)) | set(STUDY_PARAMETERS)
    smoke = {k: v for k, v in profile_values("smoke").items() if k in accepted and k not in SOURCE_PARAMETERS}
    return {**smoke, "pretrained_source": "tiny-gpt2", "scratch_source": "scratch:tiny-gpt2", **stand_ins}


def test_the_paper_profile_names_prakashs_models_and_they_stop_before_any_compute_here():
    study = Study.from_profile("paper")
    assert study.et_base_source == "huggyllama/llama-7b"
    assert set(study.et_variant_sources) == {"Vicuna-7B", "Goat-7B", "FLoat-7B"}
    assert study.et_variant_sources["Goat-7B"] == "lora:huggyllama/llama-7b+tiedong/goat-lora-7b"
    base = study.entity_base()
    assert not base.trained_here and base.analogue == "Llama-7B"
    assert {n: v.analogue for n, v in study.entity_variants().items()} == \
        {"Vicuna-7B": "Vicuna-7B", "Goat-7B": "Goat-7B", "FLoat-7B": "FLoat-7B"}
    # the hub is off in the tests: chapter 10 stops in its pre-flight, naming a model it needs
    params = resolve_parameters("10", "paper")
    with pytest.raises(SourceUnavailable, match="needs the model source") as e:
        preflight("10", params)
    assert "Hugging Face" in str(e.value)


def test_variant_sources_are_checked_before_any_compute():
    with pytest.raises(ParameterError, match="et_variant_sources"):
        Study.from_profile("smoke", et_variant_sources={"base": "tiny-llama"})
    with pytest.raises(ParameterError, match="et_variant_sources"):
        Study.from_profile("smoke", et_variant_sources=["tiny-llama"])
    with pytest.raises(ParameterError, match="unknown model source"):
        Study.from_profile("smoke", et_base_source="not a source")


def test_a_source_key_changes_when_its_folder_is_rewritten(stand_ins, tmp_path):
    folder = _perturbed(stand_ins["et_base_source"], tmp_path / "m", 5)
    before = source_key(folder)
    assert before == source_key(folder) and before != source_key(stand_ins["et_base_source"])
    _perturbed(stand_ins["et_base_source"], tmp_path / "m", 6)
    assert source_key(folder) != before


@pytest.mark.slow
def test_chapters_9_and_10_run_on_prakash_stand_ins(stand_ins, tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_BUILD_DIR", str(tmp_path / "build"))
    outs = {ch: run_chapter(ch, "paper", _overrides(ch, stand_ins)) for ch in ("09", "10")}
    for ch, out in outs.items():
        nb = nbformat.read(out, as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"], ch
        text = " ".join(str(o.get("data", {}).get("text/markdown", "")) + str(o.get("data", {}).get("text/html", ""))
                        for o in outputs)
        assert "Produced by profile `paper`" in text and stand_ins["et_base_source"] in text
    ch9 = " ".join(str(o.get("data", {}).get("text/markdown", "")) for c in nbformat.read(outs["09"], 4).cells
                   if c.cell_type == "code" for o in c.outputs)
    assert "not this run but the model source" in ch9
    # chapter 10 trained nothing: its variants are the stand-ins, each beside its row of Prakash's table
    ch10 = nbformat.read(outs["10"], as_version=4)
    html = " ".join(str(o.get("data", {}).get("text/html", "")) for c in ch10.cells if c.cell_type == "code"
                    for o in c.outputs)
    for name in ("Vicuna-7B", "Goat-7B", "FLoat-7B", "Llama-7B"):
        assert name in html, name
    assert ">trained here<" not in html and "(not trained here)" in html
    verdicts = json.loads((outs["10"].parent.parent / "verdicts.json").read_text())
    judged = {(e["claim"], e["model"]) for e in verdicts["entries"] if e["chapter"].startswith("10")}
    # the improvement claim is asked of Goat and FLoat (Prakash's arithmetic variants), the others of all
    assert {m for c, m in judged if c == "prakash-et-improves"} == {"Goat-7B", "FLoat-7B"}
    for claim in ("prakash-et-same-circuit", "prakash-et-cmap"):
        assert {m for c, m in judged if c == claim} == {"Vicuna-7B", "Goat-7B", "FLoat-7B"}
