"""Every command shown in the README, the docs pages and the preface runs, so an example cannot rot.

Commands are read from the ``bash`` blocks of the README and ``docs/*.md`` and the preface's inline code at test time, and
each must be handled here (a new command without a rule fails the test):

* ``python -m helpers`` commands run literally (``run`` and ``book`` with ``--dry-run`` added:
  parameters, relations and model availability are checked exactly as a real run checks them),
  and each ``run`` is then executed for real on the smoke profile with the same override names
  (tiny values), beside the smoke book's build; ``verdicts`` (the scorecard) run literally where
  nothing is built must stop with one message naming the command that builds the profile (and
  leave the README alone), and run on the smoke book's build must print or write every claim
  (``--readme`` on a copy of the README);
* ``make`` targets: ``test`` is this run; ``book``'s recipe is checked to be the command that the
  smoke-book test runs; ``bench`` and ``paper-shape`` run their scripts (on tiny settings);
* ``jupytext`` and ``papermill`` (running a chapter without the book's runner) run in a
  temporary folder, papermill with the smoke profile and the smoke book's trained runs;
* ``conda env create -f environment.yml`` cannot run here (no conda): the file is checked to
  install exactly ``requirements.txt`` and the project.
"""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# tiny values for a real run on the smoke profile, by override name
SMOKE_VALUES = {"train_sizes": [16, 32], "seeds": [0, 1], "n_ablation": 8, "grid_n_train": 16}


def documented_commands() -> list[str]:
    """The commands of the README's and the docs pages' ``bash`` blocks (the README is the front
    door; how-to lives in ``docs/``), and the preface's inline ones."""
    pages = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", "\n".join(p.read_text() for p in pages), flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                cmds.append(line)
    preface = (REPO / "index.qmd").read_text()
    cmds += re.findall(r"`((?:\.venv/bin/)?python -m helpers [^`]+)`", preface)
    return cmds


def helpers_args(cmd: str) -> list[str]:
    words = shlex.split(cmd)
    i = words.index("helpers")
    assert words[i - 1] == "-m" and words[i - 2].endswith("python"), cmd
    return words[i + 1:]


def run_helpers(args, env=None, timeout=900):
    return subprocess.run([sys.executable, "-m", "helpers", *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=timeout, cwd=REPO)


def test_the_readme_and_preface_show_commands():
    cmds = documented_commands()
    assert "make book" in cmds and "make test" in cmds
    assert any(c.startswith(".venv/bin/python -m helpers run") for c in cmds)


@pytest.mark.parametrize("cmd", [c for c in documented_commands() if "-m helpers" in c])
def test_helpers_command_runs_literally(cmd, tmp_path):
    args = helpers_args(cmd)
    if args[0] in ("run", "book") and "--dry-run" not in args:
        args = args + ["--dry-run"]
    env = {"BOOK_BUILD_DIR": str(tmp_path / "build")}
    if args[0] != "fetch":          # fetch prepares the repository's data folder, as `make setup` does
        env["BOOK_DATA_DIR"] = str(tmp_path / "data")
    readme = (REPO / "README.md").read_bytes()
    res = run_helpers(args, env=env)
    if args[0] == "verdicts":       # nothing is built in this empty build folder: one message, the command
        assert res.returncode == 2, (cmd, res.stdout[-2000:], res.stderr[-2000:])
        assert res.stderr.strip().splitlines()[-1].startswith("error: ")
        assert f"python -m helpers book --profile {args[args.index('--profile') + 1]}" in res.stderr
        assert (REPO / "README.md").read_bytes() == readme
    elif args[0] == "site":         # the carried build, rendered for real into this test's build folder
        assert res.returncode == 0, (cmd, res.stderr[-2000:])
        assert list((tmp_path / "build" / "published").glob("*/index.html")), res.stdout[-2000:]
        assert "Traceback" not in res.stderr
        return
    else:
        assert res.returncode == 0, (cmd, res.stderr[-2000:])
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "build").exists()           # a dry run writes nothing


def _smoke_version(args: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a == "--profile":
            out += ["--profile", "smoke"]
            i += 2
            continue
        if a == "-p":
            name = args[i + 1]
            value = SMOKE_VALUES.get(name)
            out += ["-p", name, args[i + 2] if value is None else str(value).replace("'", '"')]
            i += 3
            continue
        if a != "--dry-run":
            out.append(a)
        i += 1
    if "--profile" not in out:
        out += ["--profile", "smoke"]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [c for c in documented_commands()
                                 if "-m helpers" in c and helpers_args(c)[0] == "run" and "--dry-run" not in c])
def test_run_command_executes_on_the_smoke_profile(cmd, smoke_book):
    data, build, book_res = smoke_book
    assert book_res.returncode == 0, book_res.stderr[-2000:]
    args = _smoke_version(helpers_args(cmd))
    if any(a == "-p" for a in args) and args[1] not in ("02", "2", "02_training"):
        # an analysis chapter with study overrides needs chapter 2 with the same overrides first
        study_over = [args[i:i + 3] for i in range(len(args)) if args[i] == "-p" and args[i + 1] in
                      ("train_sizes", "seeds", "grid_n_train")]
        if study_over:
            first = run_helpers(["run", "02", "--profile", "smoke"] + sum(study_over, []),
                                env={"BOOK_DATA_DIR": str(data), "BOOK_BUILD_DIR": str(build)})
            assert first.returncode == 0, first.stderr[-2000:]
    before = sorted((build / "smoke" / "chapters").iterdir())
    stamps = {p: p.stat().st_mtime_ns for p in before}
    res = run_helpers(args, env={"BOOK_DATA_DIR": str(data), "BOOK_BUILD_DIR": str(build)})
    assert res.returncode == 0, (args, res.stderr[-3000:])
    written = Path(res.stdout.strip().splitlines()[-1].split("written to ")[-1])
    assert written.exists()
    if any(a == "-p" for a in args):                  # overrides: beside the profile's build, never over it
        assert written.parent.parent.name.startswith("smoke+")
        assert {p: p.stat().st_mtime_ns for p in before} == stamps


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [c for c in documented_commands()
                                 if "-m helpers" in c and helpers_args(c)[0] == "verdicts"])
def test_verdicts_command_runs_on_the_smoke_build(cmd, smoke_book, tmp_path):
    from helpers.book.scorecard import README_END, README_START
    from helpers.claims.verdict import claims
    data, build, book_res = smoke_book
    assert book_res.returncode == 0, book_res.stderr[-2000:]
    args = _smoke_version(helpers_args(cmd))
    copy = tmp_path / "README.md"
    copy.write_text((REPO / "README.md").read_text())
    if "--readme" in args:
        args.insert(args.index("--readme") + 1, str(copy))
    res = run_helpers(args, env={"BOOK_DATA_DIR": str(data), "BOOK_BUILD_DIR": str(build)})
    if not (build / "smoke" / "verdicts.json").exists():    # no chapter records its verdicts (yet)
        assert res.returncode == 2 and "python -m helpers book --profile smoke" in res.stderr, res.stderr
        return
    assert res.returncode == 0, (args, res.stderr[-3000:])
    text = copy.read_text() if "--readme" in args else res.stdout
    for cid in claims():
        assert cid in text, cid
    if "--readme" in args:
        before, after = (REPO / "README.md").read_text(), copy.read_text()
        assert before.split(README_START)[0] == after.split(README_START)[0]
        assert before.split(README_END)[1] == after.split(README_END)[1]


def test_make_targets_shown_are_covered():
    makefile = (REPO / "Makefile").read_text()
    shown = {c.split()[1] for c in documented_commands() if c.startswith("make ")}
    assert shown <= {"book", "test", "bench", "paper-shape", "setup", "models"}, shown
    # `make book` runs exactly what the smoke-book test runs (with PROFILE=smoke)
    assert "\t$(PY) -m helpers book --profile $(PROFILE)\n" in makefile
    assert "\t$(PY) -m pytest\n" in makefile
    assert "\t$(PY) benchmarks/bench_training.py" in makefile          # tests/test_benchmarks.py
    assert "\t$(PY) tools/paper_shape.py\n" in makefile


def test_paper_shape_checks_every_chapter_of_the_paper_profile(tmp_path):
    """`make paper-shape` runs tools/paper_shape.py; its --dry-run resolves and pre-flights every
    chapter with the paper profile on a local random GPT-2 (the full run takes about 4 minutes).
    Without --out its temporary folder (about 480 MB) is removed at the end."""
    res = subprocess.run([sys.executable, "tools/paper_shape.py", "--dry-run"],
                         capture_output=True, text=True, timeout=600, cwd=REPO,
                         env={**os.environ, "TMPDIR": str(tmp_path)})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "removed the temporary folder" in res.stdout and not list(tmp_path.glob("paper-shape-*"))
    for ch in ("02_training", "03_ablation", "04_attention", "05_representations", "06_decoding",
               "07_circuit", "08_cmap", "09_entity", "10_variants"):
        assert f"{ch}: " in res.stdout


def test_conda_environment_installs_the_same_pins():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-r requirements.txt" in pip and "-e ." in pip
    assert any(c.startswith("conda env create -f environment.yml") for c in documented_commands())


@pytest.mark.slow
def test_jupytext_and_papermill_commands_run(smoke_book, tmp_path):
    data, _, book_res = smoke_book
    assert book_res.returncode == 0, book_res.stderr[-2000:]
    cmds = [c for c in documented_commands() if c.split()[0] in ("jupytext", "papermill")]
    assert [c.split()[0] for c in cmds] == ["jupytext", "papermill"]
    bindir = Path(sys.executable).parent
    env = dict(os.environ, BOOK_DATA_DIR=str(data), BOOK_BUILD_DIR=str(tmp_path / "build"))
    for cmd in cmds:
        words = shlex.split(cmd)
        words = [str(REPO / w) if w.startswith("chapters/") else w for w in words]
        if words[0] == "papermill":
            i = words.index("profile")
            words[i + 1] = "smoke"
        words[0] = str(bindir / words[0])
        res = subprocess.run(words, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, (cmd, res.stderr[-3000:])
    import nbformat
    out = nbformat.read(tmp_path / "03_out.ipynb", as_version=4)
    text = " ".join(str(o.get("data", {}).get("text/markdown", "")) for c in out.cells
                    if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Produced by profile `smoke`" in text and "n_ablation = `32`" in text and "Verdict: **" in text
    # its verdicts are recorded beside the smoke build (its own n_ablation and seeds), never over it
    if "show_verdicts(" in (REPO / "chapters" / "03_ablation.py").read_text():
        [recorded] = (tmp_path / "build").glob("*/verdicts.json")
        assert recorded.parent.name.startswith("smoke+")
        assert json.loads(recorded.read_text())["overrides"]["n_ablation"] == 32


def test_every_documented_command_has_a_rule():
    makefile = (REPO / "Makefile").read_text()
    for cmd in documented_commands():
        if cmd.startswith("make ") or "-m helpers" in cmd or cmd.startswith("conda env create"):
            continue
        if cmd.split()[0] in ("jupytext", "papermill"):
            continue
        if cmd == "pip install --no-deps -r requirements-nodeps.txt":
            assert "--no-deps -r requirements-nodeps.txt" in makefile      # what `make setup` runs
            continue
        raise AssertionError(f"README/preface command without a test rule: {cmd!r}")


def test_the_python_examples_run_and_print_what_their_page_says(tmp_path):
    """Each ``python`` block of the README and the docs pages runs as written (tiny models,
    offline) and prints the output its page quotes for it."""
    seen = 0
    for page in [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md")):
        text = page.read_text()
        for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
            seen += 1
            r = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=600,
                               cwd=tmp_path, env=dict(os.environ))          # the session's BOOK_DATA_DIR
            assert r.returncode == 0, f"{page.name}: {r.stderr[-2000:]}"
            printed = r.stdout.strip().splitlines()[-1]
            assert f"`{printed}`" in " ".join(text.split()), f"{page.name}: {printed}"
    assert seen


def test_the_readme_is_a_front_door_and_its_links_hold():
    """The README's first screen (its collapsed verdict table counted as one line) is at most 40
    lines and says what the book is, what it found (the generated tally), the two commands and the
    map; every relative link of the README and the docs pages points to a file that exists."""
    readme = (REPO / "README.md").read_text()
    collapsed = re.sub(r"<details>.*?</details>", "<details/>", readme, flags=re.S)
    assert len(collapsed.splitlines()) <= 40, len(collapsed.splitlines())
    for must in ("## What the book found", "<!-- findings:start -->", "replicated", "make book", "make test",
                 "## Map", "src/helpers/"):
        assert must in collapsed, must
    for page in [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md")):
        for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue
            assert (page.parent / target).exists(), f"{page.name}: a link to {target} that does not exist"
