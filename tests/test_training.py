"""Training runs: learning, early stopping, caching as artifacts, resuming after a crash, and
corruption."""
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
from helpers.models.scoring import encode_prompts, score_trials
from helpers.tasks.decision import TaskConfig, baseline_predictions, check_answer_tokens, make_splits
from helpers.training import engine, runs
from helpers.training.runs import RunConfig, get_run, run_path, train_run

RUN_FILES = {"model/model.safetensors", "model/config.json", "metrics.json", "log.jsonl",
             "predictions_test.csv", "predictions_val.csv", "run_config.json", "manifest.json"}


def small_config(source: str = "tiny-gpt2", **changes) -> RunConfig:
    """A run that trains in about a second: 24 trials, batches of 8, to its cap of 6 steps (2
    epochs; evaluations at steps 3 and 6, patience too large to stop it earlier)."""
    cfg = RunConfig(source, n_train=24, max_steps=6, eval_every=3, patience=100, warmup_steps=2,
                    batch_size=8, lr=1e-3, bf16=False, n_val=8, n_test=12, task=TaskConfig(n_samples=2))
    return cfg.replace(**changes)


def overfit_config(**changes) -> RunConfig:
    """A run that early stopping ends: 8 training trials at a high learning rate, so the tiny model
    memorises them and its validation loss turns up (stops at step 44 of at most 400, best step 32;
    about a second on one thread)."""
    cfg = RunConfig("tiny-gpt2", n_train=8, max_steps=400, eval_every=4, patience=3, warmup_steps=2,
                    batch_size=4, lr=1e-2, bf16=False, n_val=16, n_test=12, task=TaskConfig(n_samples=2))
    return cfg.replace(**changes)


def val_loss_of(run) -> float:
    """The validation loss of the run's saved model, computed as training computes it."""
    model, tok = run.load_model()
    cfg = run.config
    val = make_splits(cfg.task, cfg.n_train, cfg.n_val, cfg.n_test)["val"]
    ids = check_answer_tokens(tok)
    vs = engine.ValidationSet(encode_prompts(tok, [t.prompt for t in val]),
                              torch.tensor([ids[t.choice] for t in val]), [[ids[+1], ids[-1]]] * len(val),
                              [0 if t.choice == 1 else 1 for t in val], tok.pad_token_id, torch.device("cpu"))
    return vs.evaluate(model, cfg.bf16)[0]


def weights(run_folder) -> dict[str, torch.Tensor]:
    return load_file(str(run_folder / "model" / "model.safetensors"))


def losses(run_folder) -> list[float]:
    """Every logged loss: training losses and validation losses, in order."""
    rows = [json.loads(line) for line in (run_folder / "log.jsonl").read_text().splitlines()]
    return [r.get("loss", r.get("val_loss")) for r in rows]


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
    cfg = RunConfig("tiny-llama", n_train=256, task=easy, lr=3e-3, max_steps=400, eval_every=16, patience=3,
                    batch_size=16, bf16=False, n_val=50, n_test=100)
    run = get_run(cfg, progress=False)
    log = run.log()
    m = run.metrics
    assert len(log) == m["steps"] <= 400
    first = log["loss"].head(5).mean()
    assert first > 8.0, "starts near ln(50257) = 10.8"
    assert m["final_train_loss"] < 0.3, f"training loss did not go down enough: {first:.2f} -> {m['final_train_loss']:.2f}"
    assert m["best_val_loss"] < 0.3

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
    assert m["steps"] == 6 and m["arm"] == "fine-tuned" and m["max_steps"] == 6
    assert m["config"] == json.loads(json.dumps(cfg.to_dict()))
    assert m["test"]["n"] == cfg.n_test and m["val"]["n"] == cfg.n_val
    assert 0.0 <= m["test"]["accuracy"] <= 1.0
    log = small_run.log()
    assert log["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert log["epoch"].tolist() == [0, 0, 0, 1, 1, 1]
    assert np.isfinite(log["loss"]).all() and np.isfinite(log["grad_norm"]).all()
    # reached the cap: two evaluations (steps 3 and 6), no early stop
    assert m["stop_reason"] == "step cap reached" and m["converged"] is False
    val = small_run.val_log()
    assert val["step"].tolist() == [3, 6] and np.isfinite(val["val_loss"]).all()
    assert [r["step"] for r in m["val_loss_curve"]] == [3, 6]
    assert m["best_val_loss"] == pytest.approx(val["val_loss"].min())
    assert m["best_step"] == int(val.loc[val["val_loss"].idxmin(), "step"])
    # the training loss over the evaluation window that ends at the best step
    window = log[(log["step"] > m["best_step"] - 3) & (log["step"] <= m["best_step"])]
    assert m["final_train_loss"] == pytest.approx(window["loss"].mean())
    # linear warm-up over 2 steps, then constant
    np.testing.assert_allclose(log["lr"], [cfg.lr * x for x in (0.5, 1, 1, 1, 1, 1)])
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
    assert len((partial / "log.jsonl").read_text().splitlines()) == 4 + 1     # 4 steps, 1 evaluation

    run = get_run(cfg, progress=False)
    assert run.path == final and final.is_dir() and not partial.exists()
    artifacts.verify_dir(final)
    ref = reference(source)
    assert ref["path"] != final
    assert_same_weights(weights(final), ref["weights"])
    np.testing.assert_allclose(losses(final), ref["losses"], atol=1e-6)
    assert run.metrics["test"]["accuracy"] == ref["metrics"]["test"]["accuracy"]
    for k in ("steps", "best_step", "best_val_loss", "stop_reason"):
        assert run.metrics[k] == ref["metrics"][k], k


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
    ("max_steps", 0, "1..10000000"),
    ("max_steps", 2.5, "integers"),
    ("eval_every", 0, "1..1000000"),
    ("eval_every", 7, "1..max_steps=6"),
    ("patience", 0, "1..10000"),
    ("patience", None, "integers"),
    ("warmup_steps", -1, "0..1000000"),
    ("min_delta", -0.1, "min_delta >= 0"),
    ("batch_size", 0, "1..4096"),
    ("seed", -1, "0..2147483647"),
    ("n_val", 0, "1..1000000"),
    ("n_test", 0, "1..1000000"),
    ("lr", 0.0, "0 < lr <= 1"),
    ("lr", 2.0, "0 < lr <= 1"),
    ("lr", -1e-4, "0 < lr <= 1"),
    ("lr", "fast", "0 < lr <= 1"),
    ("bf16", "yes", "True or False"),
    ("task", {"n_samples": 4}, "TaskConfig"),
    ("weight_decay", -0.1, ">= 0"),
    ("max_grad_norm", 0.0, "> 0"),
])
def test_run_config_rejects_bad_values(field, value, accepted):
    kwargs = dict(source="tiny-gpt2", n_train=8, max_steps=6, eval_every=2)
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
    assert cfg.replace(max_steps=64).key() != cfg.key()
    assert cfg.replace(patience=2).key() != cfg.key() and cfg.replace(eval_every=8).key() != cfg.key()
    assert len({cfg.key(), cfg.replace(source="tiny-gpt2").key(), cfg.replace(lr=1e-4).key()}) == 3


def test_lr_schedule_warmup_then_constant():
    f = engine._lr_lambda(warmup=4)
    assert [f(s) for s in range(8)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0])
    g = engine._lr_lambda(warmup=0)
    assert g(0) == 1.0 and g(10**6) == 1.0


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    a = engine._epoch_order(0, 1, 50)
    assert sorted(a.tolist()) == list(range(50))
    assert np.array_equal(a, engine._epoch_order(0, 1, 50))
    assert not np.array_equal(a, engine._epoch_order(0, 2, 50))
    assert not np.array_equal(a, engine._epoch_order(1, 1, 50))


# ---- early stopping -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory, session_data_dir):
    """The early-stopped run of `overfit_config`, uninterrupted, in a data dir of its own."""
    from conftest import seed_tokenizer_cache
    d = tmp_path_factory.mktemp("overfit")
    seed_tokenizer_cache(session_data_dir, d)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BOOK_DATA_DIR", str(d))
        run = get_run(overfit_config(), progress=False)
        return {"run": run, "weights": weights(run.path), "losses": losses(run.path), "metrics": run.metrics,
                "val_loss": val_loss_of(run)}


def test_a_run_stops_when_its_validation_loss_stops_improving(overfit_run):
    run, m = overfit_run["run"], overfit_run["metrics"]
    cfg = run.config
    assert m["converged"] is True
    assert m["stop_reason"] == "early stop: validation loss did not improve for 3 evaluations"
    assert m["steps"] < cfg.max_steps and m["steps"] % cfg.eval_every == 0
    val = run.val_log()
    assert val["step"].tolist() == list(range(cfg.eval_every, m["steps"] + 1, cfg.eval_every))
    # the best evaluation, then exactly `patience` that did not improve on it
    assert m["best_step"] == m["steps"] - cfg.patience * cfg.eval_every
    best = val.set_index("step")["val_loss"]
    assert m["best_val_loss"] == best[m["best_step"]] == best.min()
    assert (best[best.index > m["best_step"]] >= m["best_val_loss"]).all()
    assert (best[best.index < m["best_step"]] > m["best_val_loss"]).all()
    assert len(run.log()) == m["steps"]


def test_the_saved_model_is_the_best_evaluations(overfit_run, data_dir_factory):
    m = overfit_run["metrics"]
    # its validation loss is the best evaluation's, not the last one's
    assert overfit_run["val_loss"] == pytest.approx(m["best_val_loss"], abs=1e-5)
    assert m["val_loss_curve"][-1]["val_loss"] > m["best_val_loss"]
    # and its weights are those of a run of the same schedule that stops at the best step (the
    # learning rate does not depend on the cap, so the two runs take the same steps until then)
    data_dir_factory("overfit-to-best")
    short = get_run(overfit_config(max_steps=m["best_step"], patience=100), progress=False)
    assert short.metrics["stop_reason"] == "step cap reached" and short.metrics["steps"] == m["best_step"]
    assert_same_weights(weights(short.path), overfit_run["weights"])
    assert short.metrics["test"]["accuracy"] == m["test"]["accuracy"]
    # the training loss reported is the one of the window ending at the best step
    log = overfit_run["run"].log()
    window = log[(log["step"] > m["best_step"] - 4) & (log["step"] <= m["best_step"])]
    assert m["final_train_loss"] == pytest.approx(window["loss"].mean())


def test_early_stopping_counts_evaluations_without_improvement(monkeypatch, data_dir_factory):
    """A constructed validation curve (one value per evaluation, every 2 steps; patience 3,
    min_delta 0.1): a drop smaller than min_delta is no improvement, and an improvement resets the
    count."""
    data_dir_factory("constructed")
    curve = [5.0, 4.0, 3.0, 2.95, 3.5, 2.0, 1.95, 2.5, 3.0, 0.5]
    seen = iter(curve)
    monkeypatch.setattr(engine.ValidationSet, "evaluate", lambda self, model, bf16: (next(seen), 0.5))
    cfg = overfit_config(min_delta=0.1, patience=3, eval_every=2, max_steps=100, seed=3)
    run = get_run(cfg, progress=False)
    m = run.metrics
    # best 3.0 at step 6; 2.95 and 3.5 do not improve (2 of 3); 2.0 at step 12 does; 1.95, 2.5 and
    # 3.0 do not: stop at step 18, before the 0.5 that would have come next
    assert [r["val_loss"] for r in m["val_loss_curve"]] == curve[:9]
    assert (m["steps"], m["best_step"], m["best_val_loss"]) == (18, 12, 2.0)
    assert m["converged"] is True and "did not improve for 3 evaluations" in m["stop_reason"]
    assert len(run.log()) == 18


def test_the_cap_is_respected_and_reported(data_dir_factory):
    data_dir_factory("cap")
    run = get_run(small_config(max_steps=7), progress=False)     # evaluations at 3, 6 and the cap 7
    m = run.metrics
    assert m["steps"] == 7 and len(run.log()) == 7
    assert run.val_log()["step"].tolist() == [3, 6, 7]
    assert m["stop_reason"] == "step cap reached" and m["converged"] is False
    assert m["best_step"] in (3, 6, 7)
    assert run.log()["epoch"].tolist() == [0, 0, 0, 1, 1, 1, 2]


@pytest.mark.parametrize("when", ["at the best step", "after the best step"])
def test_an_interrupted_early_stopped_run_stops_at_the_same_step(overfit_run, data_dir_factory, when):
    """Interrupted at the best step (the best weights are the current ones) or after it (the
    checkpoint holds the best weights beside the current ones), a resumed run stops where the
    uninterrupted one did, with the same weights and metrics."""
    data_dir_factory(f"overfit-interrupted-{when.split()[0]}")
    cfg = overfit_config()
    ref = overfit_run["metrics"]
    stop_after = ref["best_step"] + (0 if when == "at the best step" else cfg.eval_every + 1)
    assert stop_after < ref["steps"]
    with pytest.raises(runs._Interrupt):
        train_run(cfg, progress=False, stop_after_step=stop_after)
    partial = run_path(cfg).with_name(run_path(cfg).name + ".partial")
    state = torch.load(partial / "state.pt", weights_only=False)
    assert state["step"] == stop_after
    assert (partial / "best.safetensors").exists() == (stop_after > ref["best_step"])
    run = get_run(cfg, progress=False)
    m = run.metrics
    assert m["resumed_from_step"] == stop_after
    for k in ("steps", "best_step", "best_val_loss", "stop_reason", "converged", "final_train_loss",
              "val_loss_curve"):
        assert m[k] == ref[k], k
    assert_same_weights(weights(run.path), overfit_run["weights"])
    np.testing.assert_allclose(losses(run.path), overfit_run["losses"], atol=1e-6)


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
