"""Reclaiming disk: ``python -m helpers clean [--runs] [--keep PROFILE ...] [--dry-run]``.

Always removed: what killed processes left behind and nothing can use: staging folders of
artifacts (``.<name>.staging-<pid>-*`` of a dead pid, :func:`~helpers.core.artifacts.stale_staging_dirs`)
under the data folder, and private kernel folders of dead processes in the temporary folder.
With ``--runs``: every training run (finished, or a ``.partial`` checkpoint) that no kept profile's
study can read or train (:meth:`helpers.study.Study.run_keys`; ``--keep`` names the profiles, by
default every profile in ``profiles/``); a run being trained right now (its lock held) is never
removed.  Runs trained with overrides (``-p seeds ...``) are kept only when ``--keep`` cannot see
them, so say which profiles matter.  ``--dry-run`` lists what would go and removes nothing.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _being_trained(folder: Path) -> bool:
    from helpers.core.artifacts import held
    from helpers.training.runs import run_lock
    return held(run_lock(folder.with_name(folder.name.removesuffix(".partial"))))


def plan(runs: bool = False, keep: Sequence[str] | None = None) -> list[tuple[Path, str, int]]:
    """What ``clean`` removes: ``(path, why, bytes)`` rows; removes nothing."""
    from helpers.book.runner import stale_kernel_folders
    from helpers.config.profiles import list_profiles, load_profile
    from helpers.core import artifacts
    from helpers.core.paths import data_dir, runs_dir
    from helpers.study import Study
    for profile in keep or ():
        load_profile(profile)                  # a bad name is refused, with or without --runs
    rows = []
    folders = [data_dir()] + [p for p in data_dir().rglob("*") if p.is_dir() and ".staging-" not in p.name]
    for folder in folders:
        rows += [(p, "left by a killed writer", _size(p)) for p in artifacts.stale_staging_dirs(folder)]
    rows += [(p, "kernel folder of a finished process", _size(p)) for p in stale_kernel_folders()]
    if runs:
        profiles = list(keep) if keep else list_profiles()
        used = set()
        for profile in profiles:
            used |= Study.from_profile(profile).run_keys()
        for p in sorted(runs_dir().iterdir()):
            if p.name.startswith(".") or not p.is_dir():
                continue
            if p.name.removesuffix(".partial") in used or _being_trained(p):
                continue
            why = "an unfinished run" if p.name.endswith(".partial") else "a run"
            rows.append((p, f"{why} that no kept profile ({', '.join(profiles)}) uses", _size(p)))
    return rows


def clean(runs: bool = False, keep: Sequence[str] | None = None, dry_run: bool = False) -> list[tuple[Path, str, int]]:
    """Remove what :func:`plan` lists (nothing with `dry_run`); returns the rows."""
    rows = plan(runs, keep)
    if not dry_run:
        for path, _, _ in rows:
            shutil.rmtree(path, ignore_errors=True)
    return rows
