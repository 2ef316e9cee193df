"""Artifact folders: stable keys, atomic writes, manifests, and loud failure on corruption."""
from __future__ import annotations

import json
import os

import pytest

from helpers.core import artifacts
from helpers.core.artifacts import MANIFEST, commit_dir, config_key, verify_dir
from helpers.core.errors import CorruptArtifact


# ---- keys -----------------------------------------------------------------------------------------

def test_config_key_is_stable_under_key_order():
    a = {"source": "tiny-gpt2", "n_train": 64, "task": {"noise": 0.2, "n_samples": 4}, "lr": 1e-4}
    b = {"lr": 1e-4, "task": {"n_samples": 4, "noise": 0.2}, "n_train": 64, "source": "tiny-gpt2"}
    assert config_key(a) == config_key(b)
    assert len(config_key(a)) == 16 and all(c in "0123456789abcdef" for c in config_key(a))
    assert len(config_key(a, length=32)) == 32 and config_key(a, length=32).startswith(config_key(a))


def test_config_key_changes_with_any_value():
    base = {"source": "tiny-gpt2", "n_train": 64, "task": {"noise": 0.2}}
    keys = {config_key(base),
            config_key({**base, "n_train": 65}),
            config_key({**base, "source": "tiny-llama"}),
            config_key({**base, "task": {"noise": 0.21}}),
            config_key({**base, "extra": None})}
    assert len(keys) == 5


def test_config_key_tuple_and_list_agree():
    # configs read back from JSON have lists where the dataclass had tuples
    assert config_key({"levels": (0.1, 0.2)}) == config_key({"levels": [0.1, 0.2]})


# ---- atomic writes --------------------------------------------------------------------------------

def test_atomic_write_text_writes_and_replaces(tmp_path):
    p = tmp_path / "sub" / "file.txt"
    artifacts.atomic_write_text(p, "first")
    assert p.read_text() == "first"
    artifacts.atomic_write_text(p, "second")
    assert p.read_text() == "second"
    assert sorted(x.name for x in p.parent.iterdir()) == ["file.txt"], "no temporary files left"


def test_atomic_write_text_failure_keeps_old_content(tmp_path, monkeypatch):
    p = tmp_path / "file.txt"
    artifacts.atomic_write_text(p, "old")

    def broken_replace(src, dst):
        raise OSError("disk full (simulated)")
    monkeypatch.setattr(artifacts.os, "replace", broken_replace)
    with pytest.raises(OSError, match="simulated"):
        artifacts.atomic_write_text(p, "new")
    monkeypatch.undo()
    assert p.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["file.txt"], "temporary file cleaned up"


# ---- commit and verify --------------------------------------------------------------------------

def _make_artifact(root, name="art"):
    final = root / name
    staging = artifacts.new_staging_dir(final)
    assert staging.parent == final.parent and staging.name.startswith(f".{name}.staging-")
    (staging / "a.txt").write_text("alpha")
    (staging / "sub").mkdir()
    (staging / "sub" / "b.bin").write_bytes(bytes(range(256)))
    return commit_dir(staging, final), staging


def test_commit_and_verify_intact(tmp_path):
    final, staging = _make_artifact(tmp_path)
    assert not staging.exists(), "staging folder is moved, not copied"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]
    manifest = json.loads((final / MANIFEST).read_text())
    assert set(manifest) == {"a.txt", os.path.join("sub", "b.bin")}
    assert manifest["a.txt"] == artifacts.sha256_file(final / "a.txt")
    verify_dir(final)          # does not raise
    assert (final / "a.txt").read_text() == "alpha"


def test_flipped_byte_raises(tmp_path):
    final, _ = _make_artifact(tmp_path)
    p = final / "sub" / "b.bin"
    data = bytearray(p.read_bytes())
    data[100] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(CorruptArtifact) as e:
        verify_dir(final)
    assert "b.bin" in str(e.value) and "checksum" in str(e.value)


def test_truncated_file_raises(tmp_path):
    final, _ = _make_artifact(tmp_path)
    (final / "a.txt").write_text("alph")
    with pytest.raises(CorruptArtifact):
        verify_dir(final)


def test_deleted_file_raises(tmp_path):
    final, _ = _make_artifact(tmp_path)
    (final / "a.txt").unlink()
    with pytest.raises(CorruptArtifact) as e:
        verify_dir(final)
    assert "a.txt" in str(e.value) and "missing" in str(e.value)


def test_missing_manifest_raises(tmp_path):
    folder = tmp_path / "hand-made"
    folder.mkdir()
    (folder / "x.txt").write_text("x")
    with pytest.raises(CorruptArtifact) as e:
        verify_dir(folder)
    assert MANIFEST in str(e.value)


def test_invalid_manifest_json_raises(tmp_path):
    final, _ = _make_artifact(tmp_path)
    (final / MANIFEST).write_text("{not json")
    with pytest.raises(CorruptArtifact, match="not valid JSON"):
        verify_dir(final)


@pytest.mark.parametrize("text, match", [("[]", "is not a manifest"), ("{}", "is not a manifest"),
                                          ('{"a.txt": 3}', "is not a manifest"),
                                          ('{"../a.txt": "00"}', "outside its folder"),
                                          ('{"/etc/passwd": "00"}', "outside its folder")])
def test_a_manifest_of_the_wrong_shape_is_corrupt_not_a_traceback(tmp_path, text, match):
    final, _ = _make_artifact(tmp_path)
    (final / MANIFEST).write_text(text)
    with pytest.raises(CorruptArtifact, match=match):
        verify_dir(final)


def test_commit_dir_replaces_existing_artifact(tmp_path):
    final, _ = _make_artifact(tmp_path)
    staging = artifacts.new_staging_dir(final)
    (staging / "c.txt").write_text("new")
    commit_dir(staging, final)
    assert sorted(p.name for p in final.iterdir()) == ["c.txt", MANIFEST]
    verify_dir(final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"], "old artifact and staging removed"


def test_sha256_file_known_value(tmp_path):
    p = tmp_path / "abc"
    p.write_bytes(b"abc")
    assert artifacts.sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
