"""LoRA runs and sources (helpers.models.lora, helpers.models.sources) on tiny random GPT-2 and
Llama (grouped key/value heads): a fresh adapter computes the base's function, only the adapters
train, a LoRA run saves only its adapter, and every way of loading it (the run, ``run:<key>``,
``lora:<base>+<adapter>``) equals the unmerged peft model's outputs; run sources of full runs load
their weights; unavailable sources stop before any compute with a message."""
import time

import pytest
import torch

from helpers.core.errors import ParameterError, SourceUnavailable
from helpers.models import lora
from helpers.models.sources import load_source, validate_source
from helpers.tasks.arithmetic import ArithmeticConfig
from helpers.training.runs import RunConfig, get_run

IDS = torch.tensor([[11, 22, 33, 44, 55, 66], [7, 8, 9, 10, 11, 12]])


def _logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_fresh_adapters_compute_the_base_function_and_only_they_train(name):
    base, _ = load_source(name, seed=3)
    before = _logits(base)
    wrapped, model = lora.add_lora(base, rank=2, seed=0)
    assert model is wrapped.get_base_model()
    torch.testing.assert_close(_logits(model), before)              # B = 0 at initialisation
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    attn = {"tiny-gpt2": ("c_attn", "attn.c_proj"), "tiny-llama": ("q_proj", "k_proj", "v_proj", "o_proj")}[name]
    for part in attn:   # every attention projection of both layers has an adapter, nothing else does
        assert sum(part in n and n.endswith("lora_A.default.weight") for n in trainable) == 2, part
    assert not any("mlp" in n for n in trainable)
    with pytest.raises(ParameterError, match="lora_rank=0 is out of range"):
        lora.add_lora(load_source(name)[0], rank=0)


@pytest.fixture(scope="module")
def lora_run(session_data_dir):
    cfg = RunConfig(source="tiny-llama", task=ArithmeticConfig(seed=1), n_train=16, lr=3e-2, max_steps=4,
                    eval_every=2, patience=2, batch_size=4, n_val=8, n_test=8, bf16=False, seed=2, lora_rank=4)
    return get_run(cfg, progress=False)


def test_a_lora_run_saves_only_its_adapter_and_loads_as_the_unmerged_model(lora_run):
    folder = lora_run.path
    assert (folder / "adapter" / "adapter_model.safetensors").exists() and not (folder / "model").exists()
    assert (folder / "adapter" / "adapter_model.safetensors").stat().st_size < 200_000
    merged, _ = lora_run.load_model()
    base, _ = load_source("tiny-llama", seed=2)
    unmerged = lora.apply_adapter(base, folder / "adapter", merge=False)
    assert type(merged).__name__ == "LlamaForCausalLM"
    torch.testing.assert_close(_logits(merged), _logits(unmerged), atol=1e-5, rtol=1e-5)
    plain, _ = load_source("tiny-llama", seed=2)
    assert (_logits(merged) - _logits(plain)).abs().max() > 1e-3          # the adapter learned something
    for source in (lora_run.source, f"lora:tiny-llama+{folder / 'adapter'}"):
        if source.startswith("lora:"):    # a lora: source's tiny base is seeded by load_source's seed
            model, _ = load_source(source, seed=2)
        else:
            model, _ = load_source(source)
        torch.testing.assert_close(_logits(model), _logits(merged))
    assert lora_run.config.key() != lora_run.config.replace(lora_rank=0).key()
    assert "lora_rank" not in lora_run.config.replace(lora_rank=0).to_dict()      # older keys unchanged


def test_run_sources_load_a_full_runs_weights_and_can_be_trained_further(session_data_dir):
    cfg = RunConfig(source="tiny-gpt2", task=ArithmeticConfig(seed=1), n_train=8, lr=1e-2, max_steps=2,
                    eval_every=2, patience=1, batch_size=4, n_val=4, n_test=4, bf16=False)
    run = get_run(cfg, progress=False)
    trained, _ = run.load_model()
    again, _ = load_source(run.source)
    torch.testing.assert_close(_logits(again), _logits(trained))
    further = get_run(cfg.replace(source=run.source, lr=1e-3), progress=False)
    assert further.config.source == run.source and further.metrics["steps"] == 2
    assert (_logits(further.load_model()[0]) - _logits(trained)).abs().max() > 0


def test_unavailable_and_malformed_sources_are_named(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SourceUnavailable, match="not trained here"):
        load_source("run:0123456789abcdef")
    with pytest.raises(ParameterError, match="run:<key>"):
        validate_source("run:not-a-key")
    with pytest.raises(ParameterError, match=r"lora:<base source>\+<adapter"):
        validate_source("lora:tiny-llama")
    with pytest.raises(ParameterError, match="unknown model source"):
        validate_source("lora:nonsense+adapter")
    validate_source("huggyllama/llama-7b")
    validate_source("lora:huggyllama/llama-7b+tiedong/goat-lora-7b")
    t0 = time.time()
    with pytest.raises(SourceUnavailable, match="not in the Hugging Face cache"):
        load_source("lora:huggyllama/llama-7b+tiedong/goat-lora-7b")
    assert time.time() - t0 < 30
    with pytest.raises(ValueError, match="LoRA adapts pretrained weights"):
        RunConfig(source="scratch:tiny-llama", n_train=4, lora_rank=2)
