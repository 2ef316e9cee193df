"""Artifacts on disk: folders keyed by a hash of their full config, written atomically, verified.

An artifact folder holds a ``manifest.json`` listing the SHA-256 of every file in it.  It is
built in a temporary sibling folder and moved into place with one ``os.replace`` at the end, so
an interrupted writer never leaves a half-written artifact under the final name.  Reading an
artifact re-hashes its files; any mismatch raises :class:`CorruptArtifact` (never used silently).
"""
from __future__ import annotations

import contextlib
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


def sampled_sha256(path: Path, chunks: int = 64, chunk_size: int = 1 << 16) -> str:
    """SHA-256 of a file's size and of `chunks` pieces of it at evenly spaced offsets (the first
    and the last included): a few MiB read whatever the file's size, so it can be checked at every
    load.  It catches a truncated or replaced file and damage in the pieces it reads; a full
    :func:`sha256_file` catches every flipped byte."""
    size = Path(path).stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        for i in range(chunks):
            f.seek(0 if chunks == 1 else (max(size - chunk_size, 0) * i) // (chunks - 1))
            h.update(f.read(chunk_size))
    return h.hexdigest()


def file_records(folder: Path, names) -> dict[str, dict]:
    """Per file of `folder` named in `names`: its size, full and sampled SHA-256."""
    return {n: {"size": (folder / n).stat().st_size, "sha256": sha256_file(folder / n),
                "sampled_sha256": sampled_sha256(folder / n)} for n in names}


def check_records(folder: Path, records: dict[str, dict], full: bool = False) -> str | None:
    """None when every recorded file of `folder` is there with its size and checksum (the sampled
    one, or the full one with `full`); else what is wrong, in words."""
    for name, rec in records.items():
        p = folder / name
        if not p.exists():
            return f"{p} is missing"
        if p.stat().st_size != rec["size"]:
            return f"{p} has {p.stat().st_size} bytes, not the {rec['size']} recorded (truncated or replaced)"
        if (sha256_file(p) if full else sampled_sha256(p)) != rec["sha256" if full else "sampled_sha256"]:
            return f"{p} does not match its recorded checksum (damaged)"
    return None


def new_staging_dir(final: Path) -> Path:
    """A new staging folder beside `final`, named after it and after this process
    (``.<name>.staging-<pid>-<random>``), so that one left by a killed process can be told from one
    being written (:func:`stale_staging_dirs`)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.staging-{os.getpid()}-"))


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this machine (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_staging_dirs(folder: Path) -> list[Path]:
    """The staging (and replaced, ``.old-<pid>``) folders under `folder` whose writing process no
    longer exists: left by a killed writer, never taken as an artifact, safe to remove.  Folders
    named before staging names carried the pid count as stale."""
    out = []
    for p in Path(folder).glob(".*.staging-*"):
        pid = p.name.rsplit(".staging-", 1)[1].split("-")
        if p.is_dir() and (len(pid) < 2 or not pid[0].isdigit() or not pid_alive(int(pid[0]))):
            out.append(p)
    for p in Path(folder).glob(".*.old-*"):
        pid = p.name.rsplit(".old-", 1)[1]
        if p.is_dir() and (not pid.isdigit() or not pid_alive(int(pid))):
            out.append(p)
    return sorted(out)


def held(lock: Path) -> bool:
    """Whether another process holds the lock file `lock` now (:func:`exclusive`); no file: no."""
    import fcntl
    if not lock.exists():
        return False
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


@contextlib.contextmanager
def exclusive(lock: Path, what: str):
    """Hold an exclusive ``flock`` on the file `lock` (which names its holder) while doing `what`.
    A second process waits for it, saying once on stderr whom it waits for; a killed holder
    releases it.  For work that must not run twice at once (training one run)."""
    import fcntl
    import sys
    import time
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            print(f"[book] waiting for {holder}, which is {what}", file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} (since {time.strftime('%Y-%m-%d %H:%M:%S')})")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptArtifact(f"{mpath} is not valid JSON ({e}); delete {folder} to recompute it") from None
    if not isinstance(manifest, dict) or not manifest or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in manifest.items()):
        raise CorruptArtifact(f"{mpath} is not a manifest (a mapping of file names to checksums); delete {folder} "
                              "to recompute it")
    for rel, digest in manifest.items():
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise CorruptArtifact(f"{mpath} names {rel!r}, outside its folder; delete {folder} to recompute it")
        p = folder / rel
        if not p.exists():
            raise CorruptArtifact(f"{p} is missing from artifact {folder}; delete the folder to recompute it")
        if sha256_file(p) != digest:
            raise CorruptArtifact(f"{p} does not match its checksum in {mpath}; "
                                  f"delete {folder} to recompute it")
