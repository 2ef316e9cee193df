"""The Study: one object built from a profile plus overrides, from which every chapter gets its
task, arms, runs, trials and models; it never trains unless asked to."""
from dataclasses import replace

import pytest

from helpers.config.parameters import STUDY_PARAMETERS
from helpers.core.errors import MissingRun, ParameterError
from helpers.study import ARMS, Study
from helpers.tasks.decision import make_splits


def tiny(**overrides):
    base = dict(train_sizes=[8], grid_n_train=8, grid_lrs_finetune=[1e-3], grid_lrs_scratch=[1e-3],
                n_val=10, n_test=12, max_steps=2, eval_every=2, batch_size=4)
    base.update(overrides)
    return Study.from_profile("smoke", **base)


def test_from_profile_reads_every_study_parameter_and_applies_overrides():
    s = Study.from_profile("smoke", seeds=[3])
    assert set(s.params) == set(STUDY_PARAMETERS)
    assert s.seeds == [3] and s.overrides == {"seeds": [3]}
    assert s.pretrained_source == "tiny-gpt2"
    with pytest.raises(AttributeError, match="its parameters are"):
        s.not_a_parameter


def test_overrides_are_checked_before_any_compute():
    with pytest.raises(ParameterError, match="grid_n_train"):
        Study.from_profile("smoke", grid_n_train=7)
    with pytest.raises(ParameterError, match="unknown study parameters"):
        Study.from_profile("smoke", n_ablation=3)


def test_trials_are_the_runs_splits_and_prefixes():
    s = tiny()
    test = s.trials("test", 12)
    assert [t.prompt for t in test] == [t.prompt for t in make_splits(s.task, 0, s.n_val, s.n_test)["test"]]
    assert [t.prompt for t in s.trials("test", 5)] == [t.prompt for t in test[:5]]
    assert [t.prompt for t in s.trials("test", 20)][:12] == [t.prompt for t in test]
    val = s.trials("val", 10)
    assert not {t.prompt for t in val} & {t.prompt for t in s.trials("test", 12)}
    with pytest.raises(ParameterError, match="split="):
        s.trials("dev", 3)


def test_arms_share_everything_but_the_source(fresh_data_dir):
    s = tiny()
    a, b = (s.arm_base(arm) for arm in ARMS)
    assert a.source == "tiny-gpt2" and b.source == "scratch:tiny-gpt2"
    assert a.replace(source=b.source) == b


def test_analyses_never_train_and_say_which_command_does(fresh_data_dir):
    s = tiny(seeds=[5])
    assert len(s.missing_runs()) == 2                       # one grid run per arm
    with pytest.raises(MissingRun, match=r"chapter 2 trains them: python -m helpers run 02 --profile smoke .*-p seeds '\[5\]'"):
        s.selected_runs()
    assert not list((fresh_data_dir / "runs").glob("*")) if (fresh_data_dir / "runs").exists() else True


def test_plan_and_selected_runs_after_training(fresh_data_dir):
    s = tiny(train_sizes=[8, 16])
    plan = s.plan()
    assert [r["stage"] for r in plan] == ["grid", "curve", "grid", "curve"]
    assert all(not r["cached"] for r in plan) and plan[1]["config"] is None   # lr unknown before the grid
    for arm in ARMS:
        curve = s.learning_curve(arm, train=True)
        # every run says how it trained: steps taken, best step, why it stopped, its training loss
        assert {"steps", "best_step", "stop_reason", "converged", "final_train_loss"} <= set(curve.columns)
        assert (curve["steps"] <= s.max_steps).all() and (curve["best_step"] <= curve["steps"]).all()
        assert set(curve["stop_reason"]) <= {"step cap reached",
                                             f"early stop: validation loss did not improve for {s.patience} evaluations"}
        assert (curve["converged"] == (curve["stop_reason"] != "step cap reached")).all()
        curve_runs = s.learning_curve_runs(arm)
        assert sorted(r.config.key() for r in curve_runs) == sorted(curve["key"])
    assert s.missing_runs() == []
    runs = s.selected_runs()
    assert {arm: r.config.n_train for arm, r in runs.items()} == {"fine-tuned": 16, "scratch": 16}
    assert all(r["cached"] for r in s.plan())
    model, tok = s.load("fine-tuned", runs)
    assert not model.training and next(model.parameters()).device == s.device
    with pytest.raises(ParameterError, match="accepted values are"):
        s.load("base")


def test_command_reproduces_profile_and_overrides():
    s = Study.from_profile("quick", train_sizes=[64, 128], seeds=[0, 1])
    assert s.command("02") == ("python -m helpers run 02 --profile quick -p train_sizes '[64, 128]' "
                               "-p seeds '[0, 1]'")


def test_entity_tracking_runs_and_trials(fresh_data_dir):
    """The entity-tracking part of the study: the task the book teaches, one learning rate per arm,
    runs that chapter 9 trains and later chapters only read."""
    s = tiny(et_boxes=4, et_train_sizes=[8, 12], et_lr_finetune=1e-3, et_lr_scratch=3e-3, et_max_steps=2, et_min_delta=0.5,
             et_n_val=10, et_n_test=12, et_seeds=[0])
    assert s.entity_task.n_boxes == 4 and s.entity_task.seed == s.task_seed
    ft, sc = s.entity_config("fine-tuned"), s.entity_config("scratch")
    assert (ft.n_train, ft.lr, ft.source) == (12, 1e-3, "tiny-gpt2") and (sc.lr, sc.source) == (3e-3, "scratch:tiny-gpt2")
    assert ft.task == s.entity_task and ft.max_steps == 2 and ft.min_delta == 0.5 and ft.n_val == 10 and ft.n_test == 12
    test = s.entity_trials("test", 12)
    assert test[:5] == s.entity_trials("test", 5) and all(t.n_boxes == 4 for t in test)
    assert not {(t.objects, t.labels) for t in test} & {(t.objects, t.labels) for t in s.entity_trials("val", 10)}
    assert s.entity_trials("test", 3, boxes=2)[0].n_boxes == 2
    assert len(s.missing_entity_runs()) == 2
    with pytest.raises(MissingRun, match=r"chapter 9 trains them: python -m helpers run 09 --profile smoke"):
        s.entity_run("fine-tuned")
    with pytest.raises(ParameterError, match="accepted values are \\['fine-tuned', 'scratch'\\]"):
        s.entity_config("base")
    curve = s.entity_curve("fine-tuned", train=True)
    assert curve["n_train"].tolist() == [8, 12] and curve["test_choice_accuracy"].between(0, 1).all()
    assert s.entity_run("fine-tuned").config == ft and len(s.missing_entity_runs()) == 1
    # chapter 10's variants start from the base's weights (run:<key>); the entity variant's task is the
    # analysed box count with the study's seed, so its test set is the analysis prompts' test set
    from helpers.study import VARIANTS
    base = s.entity_run("fine-tuned")
    cfgs = {v: s.variant_config(v) for v in VARIANTS}
    assert all(c.source == base.source == f"run:{ft.key()}" for c in cfgs.values())
    more, arith, lora = cfgs["more entity tracking"], cfgs["arithmetic"], cfgs["arithmetic (LoRA)"]
    assert more.task.n_boxes == s.et_analysis_boxes and more.task.seed == s.task_seed and more.lora_rank == 0
    assert arith.task == lora.task and arith.lora_rank == 0 and lora.lora_rank == s.lora_rank
    assert (arith.lr, lora.lr) == (s.arith_lr, s.lora_lr) and lora.key() != arith.key()
    # the control: the arithmetic variant's expressions, steps and learning rate, with random answers
    ctrl = cfgs["shuffled arithmetic (control)"]
    assert ctrl.task.shuffled and not arith.task.shuffled and ctrl.task == replace(arith.task, shuffled=True)
    assert ctrl.replace(task=arith.task) == arith and ctrl.key() != arith.key()
    with pytest.raises(MissingRun, match=r"chapter 10 trains them: python -m helpers run 10 --profile smoke"):
        s.variant_runs()
    with pytest.raises(ParameterError, match="variant='chat' is not accepted"):
        s.variant_config("chat")
