"""Exercise the `paper` profile's code paths without GPT-2's weights (the hub is unreachable here).

Runs chapters 2-9 with the `paper` profile, its pretrained source replaced by a local folder holding
a *randomly initialised* GPT-2 (124M, 12 layers x 12 heads, GPT-2's real tokenizer) and its sizes
shrunk, so that everything GPT-2-specific runs at GPT-2's real size: the named-head table and marks
of chapter 3, attention over GPT-2's tokenization, the decoders on 768-wide states.  Its numbers
say nothing about the science (the "pretrained" model is random); it checks the machinery.
Chapters 9-10 run on that GPT-2 too (their base the run chapter 9 trains, their variants trained by
chapter 10): the paper profile's Llama-7B family (28 GB per model in fp32) cannot be built here at
its real size; tests/test_paper_entity_models.py runs chapters 9-10 on tiny Llama stand-ins of it.

    .venv/bin/python tools/paper_shape.py [--out DIR]      # about 4 minutes on 2 CPU cores

Without ``--out`` it works in a temporary folder (about 480 MB: the random GPT-2, its runs) and
removes it at the end, also after an error or Ctrl-C; with ``--out`` the folder is kept to read.
    .venv/bin/python tools/paper_shape.py --dry-run        # parameters and pre-flight only
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

SMALL = dict(scratch_source="scratch:gpt2", grid_lrs_finetune=[1e-4], grid_lrs_scratch=[1e-3],
             grid_n_train=16, train_sizes=[16], seeds=[0], max_steps=2, eval_every=2, patience=1, n_val=16, n_test=40,
             n_analysis=40, n_ablation=8, n_reference=8, n_shuffles=2, cv_folds=3, umap_neighbors=5,
             n_circuit_pairs=4, n_resid_pairs=2, resid_layer_step=6, circuit_keep=2, n_circuit_eval=16,
             n_random_circuits=2, n_dcm_pairs=8, dcm_epochs=1, et_train_sizes=[14], et_max_steps=2, et_n_val=14,
             et_n_test=21, et_box_counts=[2, 7], n_zero_shot=14, n_et_pairs=4, et_keep=2, n_et_eval=14,
             et_base_source=None, et_variant_sources={})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="folder for data and executed chapters (default: a temp folder)")
    ap.add_argument("--dry-run", action="store_true",
                    help="resolve and pre-flight every chapter and print the plan; execute nothing")
    args = ap.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="paper-shape-"))
    try:
        return _run(out, args.dry_run)
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
            print(f"removed the temporary folder {out} (give --out DIR to keep the executed chapters)", flush=True)


def _run(out: Path, dry_run: bool) -> int:
    os.environ["BOOK_DATA_DIR"] = str(out / "data")
    os.environ["BOOK_BUILD_DIR"] = str(out / "build")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from helpers.book import runner
    from helpers.book.chapters import chapter_parameters
    from helpers.config.parameters import STUDY_PARAMETERS
    from helpers.models.sources import load_source

    folder = out / "gpt2-random"
    if not (folder / "config.json").exists():
        model, tok = load_source("scratch:gpt2", seed=0)
        model.save_pretrained(str(folder), safe_serialization=True)
        tok.save_pretrained(str(folder))
    params = dict(SMALL, pretrained_source=str(folder))
    for chapter in ["02", "03", "04", "05", "06", "07", "08", "09", "10"]:
        accepted = set(chapter_parameters(chapter)) | set(STUDY_PARAMETERS)
        overrides = {k: v for k, v in params.items() if k in accepted}
        if dry_run:
            params_ = runner.resolve_parameters(chapter, "paper", overrides)
            runner.preflight(chapter, params_, trained_earlier=True)
            print(runner.dry_run(chapter, "paper", overrides), flush=True)
            continue
        t0 = time.time()
        path = runner.run_chapter(chapter, "paper", overrides)
        print(f"{chapter}: {time.time() - t0:.0f} s -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
