"""The book runner's checks: unknown profile / chapter / parameter and out-of-range values stop
before any compute, with messages that name the culprit and the accepted values."""
import pytest

from helpers.book import chapters as book_chapters
from helpers.book import runner
from helpers.config import profiles
from helpers.config.parameters import SPECS, STUDY_PARAMETERS, check_value
from helpers.core.errors import ParameterError
from helpers.core.paths import REPO


def test_every_chapter_declares_only_known_parameters():
    for ch in book_chapters.list_chapters():
        declared = book_chapters.chapter_parameters(ch)
        assert "profile" in declared, ch
        unknown = set(declared) - set(SPECS) - {"study_overrides"}
        assert not unknown, f"{ch} declares parameters without a spec: {unknown}"


def test_no_chapter_repeats_the_study_parameters():
    """A chapter's parameters cell holds `profile`, `study_overrides` and its own parameters only."""
    for ch in book_chapters.list_chapters():
        declared = book_chapters.chapter_parameters(ch)
        assert not set(declared) & set(STUDY_PARAMETERS), ch
        assert declared.get("study_overrides") == {}, ch


@pytest.mark.parametrize("profile", ["smoke", "quick", "full", "paper"])
def test_every_profile_resolves_for_every_chapter(profile):
    for ch in book_chapters.list_chapters():
        params = runner.resolve_parameters(ch, profile)
        assert params["profile"] == profile
        assert params["study_overrides"] == {}


def test_every_profile_sets_every_study_parameter():
    for p in profiles.list_profiles():
        assert set(STUDY_PARAMETERS) <= set(profiles.profile_values(p)), p


def test_unknown_profile_names_the_accepted_ones():
    with pytest.raises(ParameterError, match=r"unknown profile 'nope'.*quick"):
        runner.resolve_parameters("01_task", "nope")


def test_unknown_chapter_names_the_accepted_ones():
    with pytest.raises(ParameterError, match=r"unknown chapter '99_x'.*01_task"):
        book_chapters.chapter_path("99_x")


def test_chapter_aliases():
    path = book_chapters.chapter_path
    assert path("2").stem == path("02").stem == path("02_training").stem == "02_training"
    assert path("training").stem == "02_training"


def test_unknown_override_is_rejected():
    with pytest.raises(ParameterError, match=r"no parameter 'learning_rate'.*accepted parameters are"):
        runner.resolve_parameters("02_training", "smoke", {"learning_rate": 0.1})


def test_study_overrides_are_routed_to_the_study_and_chapter_values_to_the_chapter():
    p = runner.resolve_parameters("03_ablation", "smoke", {"seeds": [0, 1], "n_ablation": 8})
    assert p["study_overrides"] == {"seeds": [0, 1]}
    assert p["n_ablation"] == 8


def test_a_chapter_parameter_of_another_chapter_is_rejected():
    with pytest.raises(ParameterError, match=r"03_ablation has no parameter 'umap_neighbors'"):
        runner.resolve_parameters("03_ablation", "smoke", {"umap_neighbors": 5})


@pytest.mark.parametrize("name,value,pattern", [
    ("max_steps", 0, r"max_steps=0.*an int in \[1, 10000000\]"),
    ("patience", 0, r"patience=0.*an int in \[1, 10000\]"),
    ("eval_every", 0, r"eval_every=0.*an int in \[1, 1000000\]"),
    ("n_samples", 99, r"n_samples=99.*\[1, 16\]"),
    ("bf16", "yes", r"bf16='yes'.*a bool"),
    ("train_sizes", [], r"train_sizes=\[\].*non-empty list"),
    ("pretrained_source", "gpt5", r"unknown model source 'gpt5'.*smollm2-135m"),
    ("noise", -0.1, r"noise=-0.1.*a float"),
])
def test_out_of_range_values_name_the_accepted_values(name, value, pattern):
    with pytest.raises(ParameterError, match=pattern):
        check_value(name, value)


def test_messages_use_the_right_article():
    with pytest.raises(ParameterError) as e:
        check_value("max_steps", "x")
    assert "an int" in str(e.value) and "a int" not in str(e.value)


def test_a_list_parameter_accepts_a_single_value():
    assert profiles.coerce("train_sizes", 64) == [64]
    assert profiles.coerce("grid_lrs_finetune", "3e-4") == [3e-4]
    p = runner.resolve_parameters("03_ablation", "smoke", {"train_sizes": 32, "ablation_kinds": "mean"})
    assert p["study_overrides"] == {"train_sizes": [32]} and p["ablation_kinds"] == ["mean"]


def test_grid_size_must_be_on_the_curve():
    with pytest.raises(ParameterError, match="grid_n_train"):
        runner.resolve_parameters("02_training", "smoke", {"grid_n_train": 7})


def test_evaluations_must_come_before_the_step_cap():
    with pytest.raises(ParameterError, match=r"eval_every=50 must be at most max_steps=20"):
        runner.resolve_parameters("02_training", "smoke", {"max_steps": 20, "eval_every": 50})


def test_profile_with_unknown_key_is_rejected(tmp_path, monkeypatch):
    (tmp_path / "bad.yaml").write_text("parameters:\n  not_a_parameter: 3\n")
    monkeypatch.setattr(profiles, "PROFILES_DIR", tmp_path)
    with pytest.raises(ParameterError, match=r"profile bad: unknown parameters \['not_a_parameter'\]"):
        runner.resolve_parameters("01_task", "bad")


def test_profile_without_a_study_parameter_is_rejected(tmp_path, monkeypatch):
    values = profiles.profile_values("smoke")
    del values["seeds"]
    import yaml
    (tmp_path / "partial.yaml").write_text(yaml.safe_dump({"parameters": values}))
    monkeypatch.setattr(profiles, "PROFILES_DIR", tmp_path)
    with pytest.raises(ParameterError, match=r"does not set the study parameters \['seeds'\]"):
        runner.resolve_parameters("02_training", "partial")


def test_yaml_exponent_strings_are_read_as_floats(tmp_path, monkeypatch):
    import yaml
    values = profiles.profile_values("smoke")
    text = yaml.safe_dump({"parameters": values}).replace("- 0.001\n", "- 3e-4\n", 1)
    assert "3e-4" in text
    (tmp_path / "exp.yaml").write_text(text)
    monkeypatch.setattr(profiles, "PROFILES_DIR", tmp_path)
    from helpers.study import Study
    assert Study.from_profile("exp").grid_lrs_finetune[0] == 3e-4


def test_cli_values_parse_as_json_else_string():
    assert runner.parse_cli_value("[1, 2]") == [1, 2]
    assert runner.parse_cli_value("3e-4") == 3e-4
    assert runner.parse_cli_value("true") is True
    assert runner.parse_cli_value("smollm2-135m") == "smollm2-135m"


def test_chapters_are_percent_scripts_with_one_parameters_cell_and_declared_needs():
    """One source per chapter: a jupytext percent script, no committed notebook beside it."""
    assert not list((REPO / "chapters").glob("*.ipynb"))
    assert not (REPO / "chapters" / "src").exists()
    for ch in book_chapters.list_chapters():
        text = book_chapters.chapter_path(ch).read_text()
        assert text.count('# %% tags=["parameters"]') == 1, ch
        nb = book_chapters.read_chapter(ch)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), ch
        assert book_chapters.chapter_needs(ch), ch


def test_quarto_book_lists_exactly_the_chapters():
    import yaml
    cfg = yaml.safe_load((REPO / "_quarto.yml").read_text())
    assert cfg["book"]["chapters"][:2] == ["index.qmd", "scorecard.qmd"]   # the scorecard first after the preface
    listed = cfg["book"]["chapters"][2:-3]
    assert listed == [f"chapters/{c}.ipynb" for c in book_chapters.list_chapters()]
    # the closing chapter, the teacher's page, then references
    assert cfg["book"]["chapters"][-3:] == ["conclusion.qmd", "teaching.qmd", "references.qmd"]
    assert cfg["execute"]["enabled"] is False     # executed by papermill, rendered as they are


def test_override_builds_go_beside_the_profiles_build(monkeypatch, tmp_path):
    monkeypatch.setenv("BOOK_BUILD_DIR", str(tmp_path))
    plain = runner.build_dir("quick")
    assert plain == tmp_path / "quick"
    one = runner.build_dir("quick", {"n_ablation": 32})
    assert one.parent == tmp_path and one != plain and one.name.startswith("quick+")
    assert "n_ablation=32" in one.name
    assert runner.build_dir("quick", {"n_ablation": 32}) == one                 # stable
    assert runner.build_dir("quick", {"n_ablation": 16}) != one
    long = runner.build_dir("quick", {"train_sizes": list(range(40))})
    assert len(long.name) < 40 and long.name.startswith("quick+")
