"""The offline model is verified like every other artifact (issue 24): sizes and checksums
recorded when it is made, a cheap check (sizes and sampled checksums) at every load, every byte at
`fetch`; a damaged cache is refused with the command that prepares it again, never used."""
import json

import pytest

from helpers.core import artifacts
from helpers.core.errors import CorruptArtifact
from helpers.models import sources


@pytest.fixture()
def fake_cache(tmp_path, monkeypatch):
    """A stand-in for the cached SmolLM2 (the real one is 517 MB): two files and their records."""
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path))
    folder = sources.smollm2_folder()
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 40_000)       # about 10 MB
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / sources.SMOLLM2_RECORD).write_text(json.dumps(artifacts.file_records(folder, sources.SMOLLM2_CHECKED)))
    return folder


def test_a_whole_cache_passes_both_checks(fake_cache):
    assert sources.smollm2_problem() is None and sources.smollm2_problem(full=True) is None
    assert sources.ensure_smollm2() == fake_cache
    assert sources.source_info(sources.SMOLLM2).available


def _flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_flipped_byte_or_a_truncated_file_is_refused_with_the_command(fake_cache):
    model = fake_cache / "model.safetensors"
    _flip(model, 5)                                         # inside the first sampled piece
    with pytest.raises(CorruptArtifact, match=r"damaged.*python -m helpers fetch"):
        sources.ensure_smollm2()
    info = sources.source_info(sources.SMOLLM2)
    assert not info.available and "python -m helpers fetch" in info.why_not
    _flip(model, 5)
    assert sources.smollm2_problem() is None
    model.write_bytes(model.read_bytes()[:-10])             # truncated
    assert "truncated" in sources.smollm2_problem()


def test_every_byte_is_checked_by_fetch(fake_cache):
    model = fake_cache / "model.safetensors"
    size = model.stat().st_size
    offset = (size - (1 << 16)) // 63 // 2 + (1 << 16)      # between two sampled pieces
    _flip(model, offset)
    assert sources.smollm2_problem() is None                # the cheap check cannot see it
    assert "damaged" in sources.smollm2_problem(full=True)
    with pytest.raises(CorruptArtifact):
        sources.ensure_smollm2(full_check=True)


def test_a_cache_without_records_cannot_be_checked_and_is_refused(fake_cache):
    (fake_cache / sources.SMOLLM2_RECORD).unlink()
    with pytest.raises(CorruptArtifact, match="cannot be checked"):
        sources.ensure_smollm2()
