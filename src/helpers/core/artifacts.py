"""Artifacts on disk: folders keyed by a hash of their full config, written atomically, verified.

An artifact folder holds a ``manifest.json`` listing the SHA-256 of every file in it.  It is
built in a temporary sibling folder and moved into place with one ``os.replace`` at the end, so
an interrupted writer never leaves a half-written artifact under the final name.  Reading an
artifact re-hashes its files; any mismatch raises :class:`CorruptArtifact` (never used silently).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from helpers.core.errors import CorruptArtifact

MANIFEST = "manifest.json"


def config_key(config: dict[str, Any], length: int = 16) -> str:
    """Stable hash of a JSON-able config (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that readers see either the old or the whole new content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new_staging_dir(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.staging-"))


def commit_dir(staging: Path, final: Path) -> Path:
    """Write the manifest of `staging` and move it to `final` in one step."""
    files = sorted(p for p in staging.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {str(p.relative_to(staging)): sha256_file(p) for p in files}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    if final.exists():        # a stale or corrupt artifact the caller chose to replace
        trash = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(staging, final)
    return final


def verify_dir(folder: Path) -> None:
    """Raise CorruptArtifact unless every file listed in the manifest is present and intact."""
    mpath = folder / MANIFEST
    if not mpath.exists():
        raise CorruptArtifact(f"{folder} has no {MANIFEST}: it was not written by this library "
                              "or was damaged; delete the folder to recompute it")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as e:
        raise CorruptArtifact(f"{mpath} is not valid JSON ({e}); delete {folder} to recompute it")
    for rel, digest in manifest.items():
        p = folder / rel
        if not p.exists():
            raise CorruptArtifact(f"{p} is missing from artifact {folder}; delete the folder to recompute it")
        if sha256_file(p) != digest:
            raise CorruptArtifact(f"{p} does not match its checksum in {mpath}; "
                                  f"delete {folder} to recompute it")
