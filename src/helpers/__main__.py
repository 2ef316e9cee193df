"""Command line: ``python -m helpers {models,task,run,book,fetch,profiles}``."""
from __future__ import annotations

import argparse
import sys


def _models(args) -> int:
    from .sources import list_sources
    rows = list_sources()
    w = max(len(r.name) for r in rows)
    for r in rows:
        status = "available" if r.available else f"NOT available: {r.why_not}"
        print(f"{r.name:<{w}}  {status:<45}  {r.description}")
    print("\nAlso accepted: a path to a local Hugging Face checkpoint folder.")
    return 0


def _task(args) -> int:
    from .task import TaskConfig, make_splits, write_jsonl
    cfg = TaskConfig(n_samples=args.n_samples, noise=args.noise, seed=args.seed)
    sizes = {"train": 0, "val": 0, "test": 0}
    sizes[args.split] = args.n
    trials = make_splits(cfg, sizes["train"], sizes["val"], sizes["test"])[args.split]
    text = write_jsonl(trials, args.out)
    if args.out is None:
        sys.stdout.write(text)
    else:
        print(f"wrote {len(trials)} {args.split} trials to {args.out}", file=sys.stderr)
    return 0


def _overrides(pairs) -> dict:
    from .book import parse_cli_value
    return {name: parse_cli_value(value) for name, value in (pairs or [])}


def _run(args) -> int:
    from .book import run_chapter
    out = run_chapter(args.chapter, args.profile, _overrides(args.p))
    print(f"executed chapter written to {out}")
    return 0


def _book(args) -> int:
    from .book import build_book
    build_book(args.profile, render=not args.no_render)
    return 0


def _fetch(args) -> int:
    from .sources import ensure_smollm2, gpt2_tokenizer
    gpt2_tokenizer()
    print(f"GPT-2 tokenizer ready (offline)")
    print(f"smollm2-135m ready at {ensure_smollm2()}")
    return 0


def _profiles(args) -> int:
    from .book import PROFILES_DIR, list_profiles, load_profile
    for p in list_profiles():
        print(f"{p:<8} {(load_profile(p).get('description') or '').strip().splitlines()[0]}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helpers", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("models", help="list model sources and whether each is available here").set_defaults(fn=_models)
    t = sub.add_parser("task", help="write trials as JSON lines (prompt, answer, every latent variable)")
    t.add_argument("--n", type=int, required=True, help="number of trials")
    t.add_argument("--seed", type=int, default=0, help="task seed")
    t.add_argument("--split", choices=["train", "val", "test"], default="train")
    t.add_argument("--n-samples", type=int, default=4, help="samples per stream")
    t.add_argument("--noise", type=float, default=0.2, help="sample noise (sd)")
    t.add_argument("--out", default=None, help="output file (default: stdout)")
    t.set_defaults(fn=_task)
    r = sub.add_parser("run", help="execute one chapter with a profile")
    r.add_argument("chapter", help="chapter name or number, e.g. 02_training or 2")
    r.add_argument("--profile", default="quick")
    r.add_argument("-p", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="override a parameter (VALUE is JSON, else a string)")
    r.set_defaults(fn=_run)
    b = sub.add_parser("book", help="execute every chapter and render the site")
    b.add_argument("--profile", default="quick")
    b.add_argument("--no-render", action="store_true", help="execute only")
    b.set_defaults(fn=_book)
    sub.add_parser("fetch", help="prepare the offline model and tokenizer").set_defaults(fn=_fetch)
    sub.add_parser("profiles", help="list profiles").set_defaults(fn=_profiles)
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
