"""The package's layers import one way: the data flow task -> model -> training run ->
interventions and readouts -> statistics -> claims -> figures -> chapter.

Each subpackage of ``helpers`` may import only the subpackages listed for it in :data:`ALLOWED`
(and itself).  The test reads every module's imports (including those inside functions) with the
AST, so a violation fails even if it is only reached at run time.
"""
import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "helpers"

LOW = {"core", "stats"}
ALLOWED = {
    "core": set(),
    "stats": set(),
    "tasks": LOW,
    "models": LOW | {"tasks"},
    "training": LOW | {"tasks", "models"},
    "interventions": LOW | {"tasks", "models"},
    "readouts": LOW | {"tasks", "models"},
    "claims": LOW | {"tasks", "readouts", "interventions"},   # verdicts take their tables
    "figures": {"core"},                                      # figures take tables, compute nothing
    "config": {"core", "models"},                             # a source parameter is checked by name
    "study": LOW | {"tasks", "models", "training", "config"},
    # the exercises' checkers compare a reader's function with the library's (chapters import them)
    "exercises": LOW | {"tasks", "models", "interventions", "readouts", "claims"},
    "book": LOW | {"tasks", "models", "training", "interventions", "readouts", "claims", "figures",
                   "config", "study", "exercises"},
    "__main__": {"book"},
}


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_layers(path: Path) -> set[tuple[str, int]]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path}: use absolute imports (helpers.<layer>...), found a relative one")
            names = [node.module or ""]
            if node.module == "helpers":
                names = [f"helpers.{a.name}" for a in node.names]
        for n in names:
            parts = n.split(".")
            if parts[0] == "helpers" and len(parts) > 1:
                out.add((parts[1], node.lineno))
    return out


MODULES = sorted(p for p in SRC.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_layers(path):
    layer = _layer(path)
    assert layer in ALLOWED, f"{path.relative_to(SRC)}: unknown layer {layer!r}; add it to ALLOWED"
    bad = [(imp, line) for imp, line in _imported_layers(path) if imp != layer and imp not in ALLOWED[layer]]
    assert not bad, (f"{path.relative_to(SRC)} ({layer}) imports {sorted(bad)}; {layer} may import only "
                     f"{sorted(ALLOWED[layer])}")


def test_the_layer_check_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from helpers.study import Study\n")
    assert ("study", 2) in _imported_layers(bad)


def test_every_subpackage_has_a_rule():
    layers = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    layers |= {p.stem for p in SRC.glob("*.py") if p.name != "__init__.py"}
    assert layers == set(ALLOWED)


def test_the_figures_palette_names_the_tasks_token_types():
    """figures/ may not import tasks/, so its palette repeats the type names: they must agree."""
    from helpers.figures import style
    from helpers.tasks import tokens
    assert style.TOKEN_TYPES == tokens.TOKEN_TYPES
    assert style.NUMBER_TYPES == tokens.NUMBER_TYPES
