"""The benchmark scripts run end to end (on tiny random models, so their numbers mean nothing)
and report what the README quotes from them."""
import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_training_benchmark_interleaves_both_loops_and_reports(tmp_path, monkeypatch):
    bench = load("bench_training")
    monkeypatch.setattr(bench, "matmul_rate", lambda: 1e9)        # the real one measures for 3 s
    out = tmp_path / "training.json"
    bench.main(["--source", "tiny-gpt2", "--n-train", "16", "--epochs", "1", "--n-test", "12",
                "--json", str(out)])
    r = json.loads(out.read_text())
    assert r["source"] == "tiny-gpt2" and r["n_train"] == 16
    assert r["engine_tokens_per_s"] > 0 and r["reference_tokens_per_s"] > 0
    assert r["speedup"] == pytest.approx(r["engine_tokens_per_s"] / r["reference_tokens_per_s"])
    for arm in ("engine", "reference"):
        lo, hi = r[f"{arm}_test_ci"]
        assert 0 <= lo <= r[f"{arm}_test_accuracy"] <= hi <= 1


def test_ablation_benchmark_checks_identical_numbers(tmp_path):
    bench = load("bench_ablation")
    out = tmp_path / "ablation.json"
    assert bench.main(["--sources", "tiny-llama", "--n-prompts", "4", "--json", str(out)]) == 0
    (r,) = json.loads(out.read_text())
    assert r["identical"] and r["max_abs_diff"] <= 1e-4
    assert r["speedup"] == pytest.approx(r["naive_s"] / r["fast_s"])


def test_executor_benchmark_reports_the_ratio_and_the_overhead(tmp_path, session_data_dir):
    pytest.importorskip("ray")
    bench = load("bench_executor")
    out = tmp_path / "executor.json"
    assert bench.main(["--source", "tiny-gpt2", "--runs", "2", "--steps", "2", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["ratio_local_over_ray"] == pytest.approx(r["train_local_s"] / r["train_ray_s"])
    assert r["ray_overhead_per_run_s"] == pytest.approx((r["one_step_ray_s"] - r["one_step_local_s"]) / 2)


def test_budget_replay_is_the_engines_stopping_rule():
    """Known answers: losses 1.0, 0.8, 0.9, 0.85, 0.7, 0.95 at steps 16..96 (min_delta 0)."""
    from helpers.training.runs import RunConfig
    bench = load("bench_quick_budget")
    vals = list(zip(range(16, 112, 16), (1.0, 0.8, 0.9, 0.85, 0.7, 0.95)))
    cfg = RunConfig("tiny-gpt2", n_train=16, min_delta=0.0)
    assert bench.replay(vals, cfg, 1) == (48, 32)      # 0.9 does not improve on 0.8: stop at once
    assert bench.replay(vals, cfg, 2) == (64, 32)      # nor 0.85
    assert bench.replay(vals, cfg, 3) == (96, 80)      # 0.7 improves; the log ends before patience runs out
    assert bench.replay(vals, cfg.replace(min_delta=0.2), 2) == (48, 16)   # 0.8 is not 0.2 better than 1.0


def test_budget_benchmark_reads_a_smoke_build(smoke_book, tmp_path):
    data, build, res = smoke_book
    assert res.returncode == 0, res.stderr[-2000:]
    bench = load("bench_quick_budget")
    out = tmp_path / "budget.json"
    r = bench.main(["--timings", str(build / "smoke" / "timings.json"), "--data", str(data),
                    "--profile", "smoke", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(r))
    assert {run["arm"] for run in r["runs"]} == {"fine-tuned", "scratch"}
    assert [rp["patience"] for rp in r["patience_replay"]] == [1, 2]
    assert r["patience_replay"][-1]["runs_with_another_checkpoint"] == []     # the patience it ran with
    assert r["patience_replay"][-1]["steps_saved"] == 0


def test_arithmetic_variants_benchmark_reports_the_gate(smoke_book, tmp_path, monkeypatch):
    data, build, res = smoke_book
    assert res.returncode == 0, res.stderr[-2000:]
    monkeypatch.setenv("BOOK_DATA_DIR", str(data))
    bench = load("bench_arithmetic_variants")
    out = tmp_path / "arith.json"
    rows = bench.main(["--profile", "smoke", "--n-train", "8", "--max-steps", "4", "--runs", "arithmetic (LoRA):1e-3",
                       "--json", str(out)])
    (r,) = json.loads(out.read_text())
    assert r == json.loads(json.dumps(rows[0])) and r["variant"] == "arithmetic (LoRA)" and r["steps"] <= 4
    lo, hi = r["test_ci"]
    assert 0 <= lo <= r["test_accuracy"] <= hi <= 1 and r["passes_learned_gate"] == (lo > 0.1 + 0.3)
