"""Training runs: learning, caching as artifacts, resuming after a crash, and corruption."""
from __future__ import annotations

import json
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from helpers.core import artifacts
from helpers.core.errors import CorruptArtifact
from helpers.models.scoring import score_trials
from helpers.tasks.decision import TaskConfig, baseline_predictions, make_splits
from helpers.training import engine, runs
from helpers.training.runs import RunConfig, get_run, run_path, train_run

RUN_FILES = {"model/model.safetensors", "model/config.json", "metrics.json", "log.jsonl",
             "predictions_test.csv", "predictions_val.csv", "run_config.json", "manifest.json"}


def small_config(source: str = "tiny-gpt2", **changes) -> RunConfig:
    """A run that trains in about a second: 24 trials, batches of 8, 2 epochs = 6 steps."""
    cfg = RunConfig(source, n_train=24, epochs=2, batch_size=8, lr=1e-3, bf16=False,
                    n_val=8, n_test=12, task=TaskConfig(n_samples=2))
    return cfg.replace(**changes)


def weights(run_folder) -> dict[str, torch.Tensor]:
    return load_file(str(run_folder / "model" / "model.safetensors"))


def losses(run_folder) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_folder / "log.jsonl").read_text().splitlines()]


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), k


def no_training(*args, **kwargs):
    raise AssertionError("train_run must not be called: the run is cached")


def flip_byte(path, offset: int = -100):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@contextmanager
def notices(capsys):
    """Collect what a call says on stdout and through warnings, as one list of strings."""
    capsys.readouterr()
    said: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield said
    said.extend(str(w.message) for w in caught)
    said.append(capsys.readouterr().out)


# ---- a tiny model learns an easy, context-dependent version of the task -------------------------

def test_tiny_model_learns_easy_task():
    # One sample per stream, one strong coherence level, little noise: the answer is the sign of
    # the relevant number, so the model must still read the context word to get the incongruent
    # trials right.  (Checked: 100% on seeds 0-3, ~12 s on one CPU thread.)
    easy = TaskConfig(n_samples=1, noise=0.05, motion_levels=(0.5,), color_levels=(0.5,))
    cfg = RunConfig("tiny-llama", n_train=256, task=easy, lr=3e-3, epochs=10, batch_size=16,
                    bf16=False, n_val=50, n_test=100)
    run = get_run(cfg, progress=False)
    log = run.log()
    assert len(log) == 10 * 256 // 16
    first, last = log["loss"].head(5).mean(), log["loss"].tail(16).mean()
    assert first > 8.0, "starts near ln(50257) = 10.8"
    assert last < 0.3, f"training loss did not go down enough: {first:.2f} -> {last:.2f}"

    m = run.metrics
    test = m["test"]
    assert test["n"] == 100
    assert test["accuracy"] >= 0.9, test
    assert test["by_congruency"]["incongruent"]["n"] >= 20
    assert test["by_congruency"]["incongruent"]["accuracy"] >= 0.8, test["by_congruency"]
    # better than any strategy that ignores the context
    trials = make_splits(easy, 0, 50, 100)["test"]
    choice = np.array([t.choice for t in trials])
    preds = baseline_predictions(trials)
    best_ignore = max(np.mean(v == choice) for k, v in preds.items() if k.startswith("ignore context"))
    assert test["accuracy"] > best_ignore + 0.1
    assert m["val"]["accuracy"] >= 0.85


# ---- one small cached run shared by the artifact tests ------------------------------------------

@pytest.fixture(scope="module")
def small_run():
    cfg = small_config()
    return get_run(cfg, progress=False)


def test_run_folder_contents(small_run):
    folder = small_run.path
    assert folder == run_path(small_run.config)
    assert folder.parent.name == "runs" and folder.name == small_run.config.key()
    files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert RUN_FILES <= files
    assert any(f.startswith("model/tokenizer") for f in files), "tokenizer saved with the model"
    artifacts.verify_dir(folder)
    # nothing left behind: no partial checkpoint, no staging folders
    siblings = [p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}") or
                p.name == folder.name + ".partial"]
    assert siblings == []


def test_run_metrics_log_and_predictions(small_run):
    cfg = small_run.config
    m = small_run.metrics
    assert m["steps"] == 6 and m["arm"] == "fine-tuned"
    assert m["config"] == json.loads(json.dumps(cfg.to_dict()))
    assert m["test"]["n"] == cfg.n_test and m["val"]["n"] == cfg.n_val
    assert 0.0 <= m["test"]["accuracy"] <= 1.0
    log = small_run.log()
    assert log["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert log["epoch"].tolist() == [0, 0, 0, 1, 1, 1]
    assert np.isfinite(log["loss"]).all() and np.isfinite(log["grad_norm"]).all()
    assert m["final_train_loss"] == pytest.approx(log["loss"].tail(3).mean())
    assert (log["lr"] <= cfg.lr + 1e-12).all() and log["lr"].iloc[-1] == 0.0, "linear decay to 0"
    pred = small_run.predictions("test")
    assert len(pred) == cfg.n_test
    expected = make_splits(cfg.task, cfg.n_train, cfg.n_val, cfg.n_test)["test"]
    assert pred["prompt"].tolist() == [t.prompt for t in expected]
    assert (pred["correct"] == (pred["model_choice"] == pred["choice"])).all()
    assert pred["correct"].mean() == pytest.approx(m["test"]["accuracy"])
    assert len(small_run.predictions("val")) == cfg.n_val
    assert json.loads((small_run.path / "run_config.json").read_text()) == m["config"]


def test_saved_model_reproduces_saved_predictions(small_run):
    model, tok = small_run.load_model()
    cfg = small_run.config
    trials = make_splits(cfg.task, cfg.n_train, cfg.n_val, cfg.n_test)["test"]
    scores = score_trials(model, tok, trials)
    pred = small_run.predictions("test")
    np.testing.assert_allclose(scores["logit_diff"], pred["logit_diff"].to_numpy(), atol=1e-4)


def test_get_run_twice_uses_the_cache(small_run, monkeypatch):
    monkeypatch.setattr(runs, "train_run", no_training)
    again = get_run(small_run.config, progress=False)
    assert again.path == small_run.path
    assert again.metrics == small_run.metrics
    # an equal config built independently hits the same artifact
    same = get_run(small_config(), progress=False, train=False)
    assert same.path == small_run.path


def test_get_run_train_false_on_missing_run(small_run, monkeypatch):
    monkeypatch.setattr(runs, "train_run", no_training)
    with pytest.raises(FileNotFoundError, match="not cached"):
        get_run(small_run.config.replace(seed=12345), train=False)


@pytest.mark.parametrize("damage", ["flip weights byte", "delete metrics", "truncate log"])
def test_corrupt_finished_run_raises(small_run, monkeypatch, damage):
    monkeypatch.setattr(runs, "train_run", no_training)    # never silently retrain
    folder = small_run.path
    target = {"flip weights byte": folder / "model" / "model.safetensors",
              "delete metrics": folder / "metrics.json",
              "truncate log": folder / "log.jsonl"}[damage]
    original = target.read_bytes()
    try:
        if damage == "flip weights byte":
            flip_byte(target)
        elif damage == "delete metrics":
            target.unlink()
        else:
            target.write_bytes(original[: len(original) // 2])
        with pytest.raises(CorruptArtifact) as e:
            get_run(small_run.config, progress=False)
        assert target.name in str(e.value)
    finally:
        target.write_bytes(original)
    get_run(small_run.config, progress=False)          # intact again


# ---- resuming ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference(tmp_path_factory, session_data_dir):
    """Uninterrupted runs of the small configs, each in a data dir of its own."""
    from conftest import seed_tokenizer_cache
    cache = {}

    def get(source: str) -> dict:
        if source not in cache:
            d = tmp_path_factory.mktemp(f"reference-{source}")
            seed_tokenizer_cache(session_data_dir, d)
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("BOOK_DATA_DIR", str(d))
                folder = get_run(small_config(source), progress=False).path
                cache[source] = {"weights": weights(folder), "losses": losses(folder),
                                 "metrics": json.loads((folder / "metrics.json").read_text()),
                                 "path": folder}
        return cache[source]

    return get


@pytest.mark.parametrize("source", ["tiny-llama", "tiny-gpt2"])
def test_interrupted_run_resumes_to_the_same_weights(source, reference, data_dir_factory):
    data_dir_factory("interrupted")
    cfg = small_config(source)
    final = run_path(cfg)
    partial = final.with_name(final.name + ".partial")
    with pytest.raises(runs._Interrupt):
        train_run(cfg, progress=False, stop_after_step=4)
    assert not final.exists(), "an interrupted run leaves no final folder"
    assert partial.is_dir()
    artifacts.verify_dir(partial)
    assert {"model.safetensors", "state.pt", "log.jsonl", "run_config.json", "manifest.json"} <= {
        p.name for p in partial.iterdir()}
    assert torch.load(partial / "state.pt", weights_only=False)["step"] == 4
    assert len((partial / "log.jsonl").read_text().splitlines()) == 4

    run = get_run(cfg, progress=False)
    assert run.path == final and final.is_dir() and not partial.exists()
    artifacts.verify_dir(final)
    ref = reference(source)
    assert ref["path"] != final
    assert_same_weights(weights(final), ref["weights"])
    np.testing.assert_allclose(losses(final), ref["losses"], atol=1e-6)
    assert run.metrics["test"]["accuracy"] == ref["metrics"]["test"]["accuracy"]


def test_resume_continues_from_the_checkpoint(data_dir_factory, monkeypatch, capsys):
    # Regression: the checkpoint's run_config.json (read back from JSON: lists) must compare equal
    # to the live config (tuples in TaskConfig), or every checkpoint is discarded and the run
    # silently restarts from step 0 (the final weights would still match, hiding the bug).
    data_dir_factory("resume-steps")
    cfg = small_config("tiny-llama")
    with pytest.raises(runs._Interrupt):
        train_run(cfg, progress=False, stop_after_step=4)
    calls = []
    real_loss = engine.answer_loss

    def counting_loss(*args, **kwargs):
        calls.append(1)
        return real_loss(*args, **kwargs)
    monkeypatch.setattr(engine, "answer_loss", counting_loss)
    with notices(capsys) as said:
        run = get_run(cfg, progress=False)
    assert not any("ignoring damaged checkpoint" in x for x in said), said
    assert len(calls) == 6 - 4, f"resumed run took {len(calls)} steps, expected 2"
    if "resumed_from_step" in run.metrics:
        assert run.metrics["resumed_from_step"] == 4
    assert run.log()["step"].tolist() == [1, 2, 3, 4, 5, 6]


def test_damaged_partial_checkpoint_is_ignored(reference, data_dir_factory, capsys):
    data_dir_factory("damaged-partial")
    cfg = small_config("tiny-llama")
    final = run_path(cfg)
    partial = final.with_name(final.name + ".partial")
    with pytest.raises(runs._Interrupt):
        train_run(cfg, progress=False, stop_after_step=4)
    flip_byte(partial / "model.safetensors")
    with notices(capsys) as said:
        run = get_run(cfg, progress=False)
    assert any("ignoring damaged checkpoint" in x and "checksum" in x for x in said), said
    assert not partial.exists()
    artifacts.verify_dir(run.path)
    ref = reference("tiny-llama")
    assert_same_weights(weights(run.path), ref["weights"])
    assert run.log()["step"].tolist() == [1, 2, 3, 4, 5, 6]


def test_partial_checkpoint_without_manifest_is_ignored(reference, data_dir_factory, capsys):
    data_dir_factory("partial-no-manifest")
    cfg = small_config("tiny-llama")
    final = run_path(cfg)
    partial = final.with_name(final.name + ".partial")
    with pytest.raises(runs._Interrupt):
        train_run(cfg, progress=False, stop_after_step=2)
    (partial / "manifest.json").unlink()
    with notices(capsys) as said:
        run = get_run(cfg, progress=False)
    assert any("ignoring damaged checkpoint" in x and "manifest.json" in x for x in said), said
    assert not partial.exists()
    assert_same_weights(weights(run.path), reference("tiny-llama")["weights"])


# ---- the config ---------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, accepted", [
    ("n_train", 0, "1..10000000"),
    ("n_train", -5, "1..10000000"),
    ("n_train", 2.5, "integers"),
    ("n_train", True, "integers"),
    ("epochs", 0, "1..1000"),
    ("min_steps", -1, "0..10000000"),
    ("batch_size", 0, "1..4096"),
    ("seed", -1, "0..2147483647"),
    ("n_val", 0, "1..1000000"),
    ("n_test", 0, "1..1000000"),
    ("lr", 0.0, "0 < lr <= 1"),
    ("lr", 2.0, "0 < lr <= 1"),
    ("lr", -1e-4, "0 < lr <= 1"),
    ("warmup_frac", 1.0, "0 <= warmup_frac < 1"),
    ("warmup_frac", -0.1, "0 <= warmup_frac < 1"),
    ("lr", "fast", "0 < lr <= 1"),
    ("bf16", "yes", "True or False"),
    ("task", {"n_samples": 4}, "TaskConfig"),
    ("weight_decay", -0.1, ">= 0"),
    ("max_grad_norm", 0.0, "> 0"),
])
def test_run_config_rejects_bad_values(field, value, accepted):
    kwargs = dict(source="tiny-gpt2", n_train=8)
    kwargs[field] = value
    with pytest.raises(ValueError) as e:
        RunConfig(**kwargs)
    msg = str(e.value)
    assert field in msg and accepted in msg


def test_run_config_rejects_unknown_source():
    with pytest.raises(ValueError) as e:
        RunConfig("gpt-5", n_train=8)
    assert "'gpt-5'" in str(e.value) and "accepted values" in str(e.value) and "tiny-gpt2" in str(e.value)


def test_run_config_round_trip_and_key():
    cfg = RunConfig("scratch:gpt2", n_train=100, task=TaskConfig(noise=0.3, seed=2), lr=3e-4)
    assert cfg.arm == "scratch" and RunConfig("gpt2", n_train=1).arm == "fine-tuned"
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["format_version"] == runs.FORMAT_VERSION
    back = RunConfig.from_dict(d)
    assert back == cfg and back.key() == cfg.key()
    assert cfg.replace(n_train=101).key() != cfg.key()
    assert cfg.replace(task=TaskConfig(noise=0.3, seed=3)).key() != cfg.key()
    assert cfg.replace(bf16=False).key() != cfg.key()
    assert cfg.replace(min_steps=64).key() != cfg.key()
    assert len({cfg.key(), cfg.replace(source="tiny-gpt2").key(), cfg.replace(lr=1e-4).key()}) == 3


def test_lr_schedule_warmup_then_linear_decay():
    f = engine._lr_lambda(total=10, warmup=2)
    assert [f(s) for s in range(10)] == pytest.approx([0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125])
    g = engine._lr_lambda(total=5, warmup=0)
    assert g(0) == 1.0 and g(4) == pytest.approx(0.2)


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    a = engine._epoch_order(0, 1, 50)
    assert sorted(a.tolist()) == list(range(50))
    assert np.array_equal(a, engine._epoch_order(0, 1, 50))
    assert not np.array_equal(a, engine._epoch_order(0, 2, 50))
    assert not np.array_equal(a, engine._epoch_order(1, 1, 50))


@pytest.mark.parametrize("n_train, batch_size, epochs, min_steps, n_epochs, total", [
    (32, 8, 2, 0, 2, 8),        # no minimum: epochs x ceil(N / batch)
    (32, 8, 2, 32, 8, 32),      # a small set gets whole extra epochs up to min_steps
    (30, 8, 2, 32, 8, 32),      # ceil(30/8) = 4 steps per epoch
    (30, 8, 2, 33, 9, 36),      # whole epochs: rounds up past min_steps
    (128, 8, 2, 32, 2, 32),     # already enough steps: unchanged
    (512, 8, 2, 32, 2, 128),
])
def test_min_steps_gives_small_sets_whole_extra_epochs(n_train, batch_size, epochs, min_steps, n_epochs, total):
    cfg = RunConfig("tiny-gpt2", n_train=n_train, batch_size=batch_size, epochs=epochs, min_steps=min_steps)
    assert (cfg.n_epochs, cfg.total_steps) == (n_epochs, total)


def test_run_with_min_steps_takes_them(data_dir_factory):
    data_dir_factory("min-steps")
    run = get_run(small_config(min_steps=10), progress=False)    # 3 steps per epoch -> 4 epochs
    log = run.log()
    assert run.metrics["steps"] == 12 and log["step"].tolist() == list(range(1, 13))
    assert log["epoch"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_training_uses_eager_attention_and_restores_the_original(monkeypatch, data_dir_factory):
    """train_run steps inside eager_attention; the saved model keeps the default implementation."""
    data_dir_factory("eager")
    seen = []
    original_step = runs.train_step

    def spy(model, *a, **k):
        seen.append(model.config._attn_implementation)
        return original_step(model, *a, **k)
    monkeypatch.setattr(runs, "train_step", spy)
    run = get_run(small_config(seed=5), progress=False)
    assert seen and set(seen) == {"eager"}
    model, _ = run.load_model()
    assert model.config._attn_implementation != "eager"
