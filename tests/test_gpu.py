"""The GPU path: the smoke book on CUDA, chapter by chapter, and a training run there.  Marked
``gpu``; they skip on a machine without CUDA (this project's CI: docs/profiles.md says what remains
untested on a GPU)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="no CUDA device here: the GPU path is untested on this machine (docs/profiles.md, "
                                        "'The GPU path')")]


def test_a_training_run_trains_on_cuda(fresh_data_dir, monkeypatch):
    from helpers.tasks.decision import TaskConfig
    from helpers.training.runs import RunConfig, get_run
    monkeypatch.setenv("BOOK_DEVICE", "cuda")
    cfg = RunConfig("tiny-gpt2", n_train=16, max_steps=6, eval_every=3, patience=100, warmup_steps=2,
                    batch_size=8, lr=1e-3, bf16=True, n_val=8, n_test=12, task=TaskConfig(n_samples=2))
    run = get_run(cfg, progress=False)
    assert run.metrics["steps"] == 6 and 0 <= run.metrics["test"]["accuracy"] <= 1


def test_the_smoke_book_runs_on_cuda(tmp_path, session_data_dir):
    """Every chapter of the smoke profile with its tensors on CUDA (``BOOK_DEVICE=cuda``)."""
    from conftest import seed_tokenizer_cache

    from helpers.core.paths import REPO
    data = tmp_path / "data"
    data.mkdir()
    seed_tokenizer_cache(session_data_dir, data)
    env = dict(os.environ, BOOK_DATA_DIR=str(data), BOOK_BUILD_DIR=str(tmp_path / "build"), BOOK_DEVICE="cuda")
    res = subprocess.run([sys.executable, "-m", "helpers", "book", "--profile", "smoke", "--no-render"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-4000:]
