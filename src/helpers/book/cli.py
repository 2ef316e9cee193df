"""Command line: ``python -m helpers {models,task,run,book,site,publish,verdicts,calibrate,clean,fetch,profiles}``.

The project's own errors (a bad parameter, an unavailable model source, a corrupt artifact, a
missing run; :class:`helpers.core.errors.BookError`) print one message and exit with status 2,
also when a chapter's kernel raised them; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys

from helpers.core.errors import BookError, ParameterError
from helpers.core.paths import REPO


def _models(args) -> int:
    from helpers.models.sources import list_sources
    rows = list_sources()
    w = max(len(r.name) for r in rows)
    for r in rows:
        status = "available" if r.available else f"NOT available: {r.why_not}"
        print(f"{r.name:<{w}}  {r.description}\n{'':<{w}}  {status}")
    print("\nAlso accepted: a path to a local Hugging Face checkpoint folder.")
    return 0


def _task(args) -> int:
    from helpers.tasks.base import make_task, write_jsonl
    own = {"decision": {"n_samples", "noise"}, "entity-tracking": {"boxes"}, "arithmetic": {"terms"}}
    for task, options in own.items():
        for opt in options:
            if task != args.task and getattr(args, opt) is not None:
                raise ParameterError(f"--{opt.replace('_', '-')} is an option of the {task} task, not of "
                                     f"{args.task}: accepted options of {args.task} are "
                                     f"{sorted('--' + o.replace('_', '-') for o in own[args.task])}")
    if args.task == "decision":
        params = {k: v for k, v in (("n_samples", args.n_samples), ("noise", args.noise)) if v is not None}
    elif args.task == "entity-tracking":
        params = {"n_boxes": args.boxes} if args.boxes is not None else {}
    else:
        params = {"n_terms": args.terms} if args.terms is not None else {}
    task = make_task(args.task, seed=args.seed, **params)
    sizes = {"train": 0, "val": 0, "test": 0}
    sizes[args.split] = args.n
    trials = task.make_splits(sizes["train"], sizes["val"], sizes["test"])[args.split]
    text = write_jsonl(trials, args.out)
    if args.out is None:
        sys.stdout.write(text)
    else:
        print(f"wrote {len(trials)} {args.split} trials of {args.task} to {args.out}", file=sys.stderr)
    return 0


def _overrides(pairs) -> dict:
    from helpers.book.runner import parse_cli_value
    return {name: parse_cli_value(value) for name, value in (pairs or [])}


def _chapter_failed(e) -> int:
    """A chapter's kernel raised: the project's own errors become one message, others re-raise."""
    from helpers.core import errors
    if getattr(e, "ename", None) in {c.__name__ for c in _subclasses(errors.BookError)}:
        print(f"error: {e.evalue}", file=sys.stderr)
        return 2
    if getattr(e, "ename", None) == "KeyboardInterrupt":     # Ctrl-C reached the kernel before this process
        print("interrupted", file=sys.stderr)
        return 130
    raise e


def _kernel_died() -> int:
    """The chapter's kernel was killed from outside (out of memory, kill -9): not a bug of the
    chapter; the runner has already said what was kept."""
    print("error: the chapter's kernel died (killed from outside, or out of memory); its messages are in the "
          "build's kernel.log", file=sys.stderr)
    return 1


def _subclasses(cls):
    out = {cls}
    for c in cls.__subclasses__():
        out |= _subclasses(c)
    return out


def _run(args) -> int:
    from papermill.exceptions import PapermillExecutionError

    from helpers.book.runner import dry_run, run_chapter
    overrides = _overrides(args.p)
    if args.executor is not None:
        overrides["executor"] = args.executor
    if args.dry_run:
        print(dry_run(args.chapter, args.profile, overrides))
        return 0
    from nbclient.exceptions import DeadKernelError
    try:
        out = run_chapter(args.chapter, args.profile, overrides)
    except PapermillExecutionError as e:
        return _chapter_failed(e)
    except DeadKernelError:
        return _kernel_died()
    print(f"executed chapter written to {out}")
    return 0


def _book(args) -> int:
    from papermill.exceptions import PapermillExecutionError

    from helpers.book.runner import build_book, dry_run
    if args.dry_run:
        print(dry_run(None, args.profile))
        return 0
    from nbclient.exceptions import DeadKernelError
    try:
        build_book(args.profile, render=not args.no_render,
                   overrides={"show_solutions": False} if args.no_solutions else None, executor=args.executor)
    except PapermillExecutionError as e:
        return _chapter_failed(e)
    except DeadKernelError:
        return _kernel_died()
    return 0


def _publish(args) -> int:
    from helpers.book.published import publish
    out = publish(args.profile)
    print(f"build {args.profile} carried in {out}; `python -m helpers site --published` renders it")
    return 0


def _site(args) -> int:
    if args.published is not None:
        from helpers.book.published import site_from_published
        site_from_published(args.published or None)
        return 0
    from helpers.book.scorecard import build_command, resolve_build
    from helpers.book.site import render_site
    from helpers.core.errors import MissingBuild
    folder = resolve_build(args.profile)
    if not list((folder / "chapters").glob("*.ipynb")):
        raise MissingBuild(f"{folder} holds no executed chapter to render: build it first with "
                           f"`{build_command(folder)}`")
    from helpers.book.scorecard import failed_chapters
    failed = failed_chapters(folder)
    if failed:
        print(f"note: {', '.join(failed)} did not finish at the last execution: the site shows the execution before, "
              f"if any, and the scorecard page says so; the interrupted notebooks are in {folder / 'chapters' / 'failed'}")
    render_site(folder)
    return 0


def _verdicts(args) -> int:
    from helpers.book.scorecard import (default_builds, load_verdicts, pipe_table, readme_findings, rewrite_readme,
                                        scorecard_table, scorecard_text)
    load_verdicts(args.profile)            # no verdicts recorded: MissingBuild names the command that builds them
    if args.readme:
        path = rewrite_readme(args.readme, readme_findings(args.profile))
        print(f"findings table of {path} rewritten from the {args.profile} build")
        return 0
    builds = default_builds(args.profile)
    if args.markdown:
        table = scorecard_table(builds, markdown=True)
        names = [b["name"] for b in table.attrs["builds"]]
        print(pipe_table(["claim", "chapter", "model", *names],
                         table[["claim", "chapter", "model", *names]].itertuples(index=False)))
    else:
        print(scorecard_text(builds))
    return 0


def _calibrate(args) -> int:
    import datetime
    from pathlib import Path

    from helpers.claims import calibration
    from helpers.core.artifacts import atomic_write_text
    out = Path(args.out).resolve()
    if not out.parent.is_dir():
        raise ParameterError(f"--out {args.out}: folder {out.parent} does not exist")
    table = calibration.table(args.draws, args.seed, progress=True)
    when = f"{datetime.date.today().isoformat()} (seed {args.seed})"
    atomic_write_text(out, calibration.markdown(table, when))
    failed = table[table["passed"] == False]  # noqa: E712  (None: reported, not required)
    print(f"{len(table)} scenarios, {args.draws} draws each, {table['seconds'].sum():.0f} s: "
          f"{len(failed)} failed; table written to {out}")
    for _, r in failed.iterrows():
        print(f"  FAILED {r['claim']}: {r['scenario']} ({r['kind']}): replicated {r['replicated']:.1%} "
              f"[{r['lo']:.1%}, {r['hi']:.1%}]")
    return 1 if len(failed) else 0


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is out of range: accepted values are integers >= 1")
    return n


def _fetch(args) -> int:
    from helpers.models.sources import ensure_smollm2, gpt2_tokenizer
    gpt2_tokenizer()
    print("GPT-2 tokenizer ready (offline)")
    print(f"smollm2-135m ready at {ensure_smollm2(full_check=True, repair=True)} (every byte checked)")
    return 0


def _clean(args) -> int:
    from helpers.book.clean import clean
    rows = clean(runs=args.runs, keep=args.keep, dry_run=args.dry_run)
    for path, why, size in rows:
        print(f"{'would remove' if args.dry_run else 'removed'} {path} ({size / 2**20:.1f} MiB): {why}")
    total = sum(r[2] for r in rows) / 2**20
    print(f"{len(rows)} {'would be' if args.dry_run else 'were'} removed, {total:.1f} MiB"
          + ("" if args.runs else "; add --runs to remove training runs no profile uses"))
    return 0


def _profiles(args) -> int:
    from helpers.config.profiles import list_profiles, load_profile
    for p in list_profiles():
        print(f"{p:<8} {(load_profile(p).get('description') or '').strip().splitlines()[0]}")
    return 0


def _non_negative(text: str) -> int:
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n} is out of range: accepted values are integers >= 0")
    return n


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m helpers", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("models", help="list model sources and whether each is available here").set_defaults(fn=_models)
    t = sub.add_parser("task", help="write trials as JSON lines (prompt, answer, every latent variable)")
    t.add_argument("task", nargs="?", default="decision", choices=["decision", "entity-tracking", "arithmetic"],
                   help="which task (default: decision)")
    t.add_argument("--n", type=_non_negative, required=True, help="number of trials")
    t.add_argument("--seed", type=_non_negative, default=0, help="task seed")
    t.add_argument("--split", choices=["train", "val", "test"], default="train")
    t.add_argument("--n-samples", type=int, default=None, help="decision: samples per stream (1-16, default 4)")
    t.add_argument("--noise", type=float, default=None, help="decision: sample noise (sd, 0-1, default 0.2)")
    t.add_argument("--boxes", type=int, default=None, help="entity-tracking: boxes per context (default 7)")
    t.add_argument("--terms", type=int, default=None, help="arithmetic: operands per expression (2-6, default 3)")
    t.add_argument("--out", default=None, help="output file (default: stdout)")
    t.set_defaults(fn=_task)
    r = sub.add_parser("run", help="execute one chapter with a profile (and overrides)")
    r.add_argument("chapter", help="chapter name or number, e.g. 02_training or 2")
    r.add_argument("--profile", default="quick")
    r.add_argument("-p", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="override a parameter (VALUE is JSON, else a string; a list parameter also "
                        "takes a single value); the chapter is written beside the profile's build")
    r.add_argument("--dry-run", action="store_true",
                   help="print the resolved parameters, cached and missing runs and a time estimate; run nothing")
    executor_help = ("where the missing training runs train: local (this process, the default) or ray (one Ray "
                     "task per run; a local cluster, or the one RAY_ADDRESS names); chapters 2, 9 and 10 train")
    r.add_argument("--executor", choices=["local", "ray"], default=None, help=executor_help)
    r.set_defaults(fn=_run)
    b = sub.add_parser("book", help="execute every chapter and render the site")
    b.add_argument("--profile", default="quick")
    b.add_argument("--no-render", action="store_true", help="execute only")
    b.add_argument("--no-solutions", action="store_true",
                   help="leave the exercises' solutions out (a build for students), into _build/<profile>+show_solutions=false")
    b.add_argument("--dry-run", action="store_true",
                   help="print the resolved parameters, cached and missing runs and a time estimate; run nothing")
    b.add_argument("--executor", choices=["local", "ray"], default=None, help=executor_help)
    b.set_defaults(fn=_book)
    s = sub.add_parser("site", help="render the site of a build again from its executed chapters (no kernel runs)")
    s.add_argument("--profile", default="quick", help="profile, or build folder under _build (e.g. quick+seeds=0,1)")
    s.add_argument("--published", nargs="?", const="", default=None, metavar="BUILD",
                   help="render the executed build the repository carries (published/; default its only one) "
                        "into _build/published, marking the chapters changed since they were executed")
    s.set_defaults(fn=_site)
    pb = sub.add_parser("publish", help="(maintainers) copy a whole executed build into published/, the build the "
                                        "repository carries for `site --published`")
    pb.add_argument("--profile", default="quick", help="profile, or build folder under _build")
    pb.set_defaults(fn=_publish)
    v = sub.add_parser("verdicts", help="the scorecard: every claim's verdict in a profile's build "
                                        "(and in the other profiles built here)")
    v.add_argument("--profile", default="quick",
                   help="profile (or build folder under _build, e.g. quick+seeds=0,1) whose verdicts come first")
    v.add_argument("--markdown", action="store_true", help="print a Markdown pipe table")
    v.add_argument("--readme", nargs="?", const=str(REPO / "README.md"), default=None, metavar="FILE",
                   help="rewrite the findings table between the markers <!-- findings:start --> and "
                        "<!-- findings:end --> of FILE (default: the README) from this build")
    v.set_defaults(fn=_verdicts)
    c = sub.add_parser("calibrate", help="the adversarial calibration of every verdict rule: null and planted-effect "
                                         "scenarios, written as a Markdown table")
    c.add_argument("--draws", type=_positive, default=200, help="simulated verdicts per scenario (default 200)")
    c.add_argument("--seed", type=_non_negative, default=0)
    c.add_argument("--out", default=str(REPO / "docs" / "calibration.md"), help="the table's file (default docs/calibration.md)")
    c.set_defaults(fn=_calibrate)
    k = sub.add_parser("clean", help="remove what killed processes left (staging and kernel folders); with --runs, "
                                     "training runs that no kept profile uses")
    k.add_argument("--runs", action="store_true", help="also remove training runs no kept profile's study uses")
    k.add_argument("--keep", nargs="+", metavar="PROFILE", default=None,
                   help="the profiles whose runs are kept (default: every profile in profiles/)")
    k.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    k.set_defaults(fn=_clean)
    sub.add_parser("fetch", help="prepare the offline model and tokenizer").set_defaults(fn=_fetch)
    sub.add_parser("profiles", help="list profiles").set_defaults(fn=_profiles)
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except BookError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:                # Ctrl-C: what finished before is kept (the runner says what)
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:                  # `... | head -1`: the reader left, which is not an error
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error at exit
        return 141


if __name__ == "__main__":
    sys.exit(main())
