"""helpers.core.cache: analysis results stored by config, read back exactly, verified."""
import numpy as np
import pytest

from helpers.core import cache
from helpers.core.errors import CorruptArtifact


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path))
    return tmp_path


def test_a_nested_result_reads_back_as_written_and_is_computed_once(data_dir):
    calls = []

    def compute():
        calls.append(1)
        return {"scores": np.arange(6.0).reshape(2, 3), "heads": [[1, 2], [0, 1]], "n": 3,
                "inner": {"clean": np.array([0.5, -0.5]), "name": "evidence", "empty": {}}}
    a = cache.cached("demo", {"run": "abc", "n": 3}, compute)
    b = cache.cached("demo", {"n": 3, "run": "abc"}, compute)          # key order does not matter
    assert len(calls) == 1
    assert np.array_equal(b["scores"], a["scores"]) and b["heads"] == [[1, 2], [0, 1]] and b["n"] == 3
    assert np.array_equal(b["inner"]["clean"], [0.5, -0.5]) and b["inner"]["name"] == "evidence"
    assert b["inner"]["empty"] == {}
    cache.cached("demo", {"run": "abc", "n": 4}, compute)              # another config: computed again
    assert len(calls) == 2
    folder = cache.path_of("demo", {"run": "abc", "n": 3})
    assert folder.parent == data_dir / "analyses" and (folder / "config.json").exists()


def test_a_damaged_result_is_never_used(data_dir):
    cache.cached("demo", {"k": 1}, lambda: {"x": np.ones(3)})
    folder = cache.path_of("demo", {"k": 1})
    (folder / "arrays.npz").write_bytes(b"damaged")
    with pytest.raises(CorruptArtifact):
        cache.cached("demo", {"k": 1}, lambda: {"x": np.ones(3)})


def test_keys_with_the_separator_and_values_json_cannot_hold_are_refused(data_dir):
    with pytest.raises(ValueError, match="contains '/'"):
        cache.cached("demo", {"k": 2}, lambda: {"a/b": 1})
    with pytest.raises(TypeError):
        cache.cached("demo", {"k": 3}, lambda: {"a": object()})
    assert not cache.path_of("demo", {"k": 2}).exists()
