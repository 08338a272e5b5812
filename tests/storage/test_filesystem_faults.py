"""The filesystem store under damage: corrupt files, old and future schemas, crashes mid-save."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from itertools import pairwise
from pathlib import Path

import msgpack
import pytest
import torch
from safetensors import safe_open

from superlinear.core.errors import InvalidRequest, NotFound, SnapshotError
from superlinear.core.ports import SnapshotManifest
from superlinear.core.values import Message
from superlinear.storage import MIGRATIONS, FilesystemSnapshotStore, default_snapshot_root


def random_state(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "kv.0": torch.randn(2, 37, 8, generator=generator).to(torch.bfloat16),
        "ssm.0": torch.randn(3, 5, 7, generator=generator),
        "logits": torch.randn(1, 101, generator=generator, dtype=torch.float64),
        "cursor": torch.tensor([37], dtype=torch.int64),
    }


def a_manifest(snapshot_id: str, created_at: float = 1.0, **fields) -> SnapshotManifest:
    return SnapshotManifest(
        snapshot_id=snapshot_id,
        created_at=created_at,
        model={"config_sha256": "c0ffee", "dtype": "bfloat16"},
        ledger=tuple(range(100, 137)),
        transcript=(Message("user", "héllo"), Message("assistant", "wörld")),
        max_seq_len=2048,
        **fields,
    )


@pytest.fixture
def seed() -> int:
    return time.time_ns() % 2**31


@pytest.fixture
def store(tmp_path) -> FilesystemSnapshotStore:
    return FilesystemSnapshotStore(tmp_path / "snaps")


@pytest.fixture
def saved(store, seed) -> dict[str, torch.Tensor]:
    """A healthy snapshot "good" and a victim "bad" that each test damages."""
    state = random_state(seed)
    store.save(a_manifest("good", 1.0), state.items())
    store.save(a_manifest("bad", 2.0), random_state(seed + 1).items())
    return state


def assert_good_still_loads(store: FilesystemSnapshotStore, state: dict[str, torch.Tensor]) -> None:
    _, loaded = store.load("good")
    assert all(torch.equal(loaded[name], tensor) for name, tensor in state.items())


def test_a_truncated_state_file_is_a_snapshot_error(store, saved):
    path = store.root / "bad" / "state.safetensors"
    os.truncate(path, path.stat().st_size - 10)
    with pytest.raises(SnapshotError, match="'bad'.*truncated"):
        store.load("bad")
    with pytest.raises(SnapshotError, match="'bad'.*truncated"):
        store.manifest("bad")  # the cheap read sees it too (a stat)
    assert_good_still_loads(store, saved)


def test_a_flipped_byte_is_a_snapshot_error(store, saved):
    path = store.root / "bad" / "state.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) - 3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="'bad'.*sha256"):
        store.load("bad")
    assert store.manifest("bad").snapshot_id == "bad"  # reads no arrays: only load verifies their checksum
    assert_good_still_loads(store, saved)


def test_a_future_schema_is_a_snapshot_error(store, saved):
    path = store.root / "bad" / "manifest.msgpack"
    doc = msgpack.unpackb(path.read_bytes())
    doc["schema_version"] = 99
    path.write_bytes(msgpack.packb(doc))
    with pytest.raises(SnapshotError, match="schema version 99 is newer"):
        store.load("bad")
    assert [info.snapshot_id for info in store.list()] == ["good"]
    assert_good_still_loads(store, saved)


def test_a_missing_manifest_is_a_snapshot_error_and_is_not_listed(store, saved):
    (store.root / "bad" / "manifest.msgpack").unlink()
    with pytest.raises(SnapshotError, match="manifest.msgpack is missing"):
        store.load("bad")
    with pytest.raises(SnapshotError):
        store.get("bad")
    assert [info.snapshot_id for info in store.list()] == ["good"]
    assert_good_still_loads(store, saved)


def test_a_missing_state_file_is_a_snapshot_error(store, saved):
    (store.root / "bad" / "state.safetensors").unlink()
    with pytest.raises(SnapshotError, match="state.safetensors is missing"):
        store.load("bad")
    with pytest.raises(SnapshotError, match="state.safetensors is missing"):
        store.manifest("bad")
    assert_good_still_loads(store, saved)


def test_a_garbled_manifest_is_a_snapshot_error(store, saved):
    (store.root / "bad" / "manifest.msgpack").write_bytes(b"\xc1 not msgpack")
    with pytest.raises(SnapshotError, match="not valid msgpack"):
        store.load("bad")
    assert [info.snapshot_id for info in store.list()] == ["good"]


def test_a_stale_temp_dir_is_swept_on_construction_and_never_listed(tmp_path, seed):
    root = tmp_path / "snaps"
    FilesystemSnapshotStore(root).save(a_manifest("kept"), random_state(seed).items())
    stale = root / ".tmp-half-0123abcd"
    stale.mkdir()
    (stale / "state.safetensors").write_bytes(b"partial")
    later = FilesystemSnapshotStore(root)
    assert not stale.exists()
    (root / ".tmp-other-ffff").mkdir()
    assert [info.snapshot_id for info in later.list()] == ["kept"]


def test_a_failing_iterable_leaves_nothing_behind(store, seed):
    def arrays():
        yield "a", torch.randn(4, 4)
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError, match="producer failed"):
        store.save(a_manifest("broken"), arrays())
    assert list(store.root.iterdir()) == []
    with pytest.raises(NotFound):
        store.get("broken")


def test_unencodable_extra_is_refused_before_anything_is_written(store, seed):
    with pytest.raises(InvalidRequest):
        store.save(a_manifest("x", extra={"bad": object()}), random_state(seed).items())
    assert list(store.root.iterdir()) == []


KILLED_SAVER = textwrap.dedent(
    """
    import sys, time
    import torch
    from superlinear.core.ports import SnapshotManifest
    from superlinear.storage import FilesystemSnapshotStore, state_file

    # Slow each tensor write down so the parent can kill us while the data is being written.
    original = state_file.tensor_bytes
    def slow_tensor_bytes(tensor):
        time.sleep(0.02)
        return original(tensor)
    state_file.tensor_bytes = slow_tensor_bytes

    def slow_arrays():
        for i in range(200):
            time.sleep(0.001)
            yield f"t{i}", torch.randn(64, 1024)

    manifest = SnapshotManifest("big", 99.0, {}, tuple(range(5000)), (), 8192)
    FilesystemSnapshotStore(sys.argv[1]).save(manifest, slow_arrays())
    print("finished", flush=True)
    """
)


def wait_for_partial_state(root: Path, child: subprocess.Popen, min_bytes: int) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        for state in root.glob(".tmp-big-*/state.safetensors"):
            if state.stat().st_size > min_bytes:
                return state
        time.sleep(0.01)
    child.kill()
    pytest.fail(f"the saver never got to write data: {child.communicate()}")


def test_sigkill_during_save_leaves_earlier_snapshots_and_no_partial_one(tmp_path, seed):
    root = tmp_path / "snaps"
    state = random_state(seed)
    FilesystemSnapshotStore(root).save(a_manifest("earlier"), state.items())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_SAVER, str(root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    partial = wait_for_partial_state(root, child, min_bytes=1 << 20)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert partial.parent.exists()
    assert not (root / "big").exists()

    store = FilesystemSnapshotStore(root)
    assert not partial.parent.exists()
    assert [info.snapshot_id for info in store.list()] == ["earlier"]
    with pytest.raises(NotFound):
        store.load("big")
    _, loaded = store.load("earlier")
    assert all(torch.equal(loaded[name], tensor) for name, tensor in state.items())


def to_fake_v0(doc: dict) -> dict:
    """The fake version-0 layout: flat fields, other names, messages as [role, content] pairs."""
    snap = doc["snapshot"]
    return {
        "schema_version": 0,
        "id": snap["snapshot_id"],
        "created": snap["created_at"],
        "fingerprint": snap["model"],
        "tokens": snap["ledger"],
        "messages": [[m["role"], m["content"]] for m in snap["transcript"]],
        "max_seq_len": snap["max_seq_len"],
        "state": doc["state"],
    }


def migrate_v0_to_v1(doc: dict) -> dict:
    snapshot = {
        "snapshot_id": doc["id"],
        "created_at": doc["created"],
        "model": doc["fingerprint"],
        "ledger": doc["tokens"],
        "transcript": [{"role": role, "content": content} for role, content in doc["messages"]],
        "max_seq_len": doc["max_seq_len"],
    }
    return {"schema_version": 1, "snapshot": snapshot, "state": doc["state"]}


def test_a_v0_manifest_loads_through_its_migration(store, seed, monkeypatch):
    state = random_state(seed)
    original = a_manifest("legacy", 7.0)
    store.save(original, state.items())
    path = store.root / "legacy" / "manifest.msgpack"
    path.write_bytes(msgpack.packb(to_fake_v0(msgpack.unpackb(path.read_bytes()))))

    with pytest.raises(SnapshotError, match="no migration from manifest schema version 0"):
        store.load("legacy")
    monkeypatch.setitem(MIGRATIONS, 0, migrate_v0_to_v1)
    manifest, loaded = store.load("legacy")
    assert manifest == original
    assert all(torch.equal(loaded[name], tensor) for name, tensor in state.items())
    assert store.patch("legacy", title="upgraded").title == "upgraded"
    monkeypatch.delitem(MIGRATIONS, 0)
    assert msgpack.unpackb(path.read_bytes())["schema_version"] == 1
    assert store.load("legacy")[0].title == "upgraded"


def test_the_state_file_is_standard_safetensors(store, seed):
    state = random_state(seed)
    store.save(a_manifest("fmt"), state.items())
    path = store.root / "fmt" / "state.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        assert set(handle.keys()) == set(state)
        assert handle.metadata()["snapshot_id"] == "fmt"
        for name, tensor in state.items():
            assert torch.equal(handle.get_tensor(name), tensor), name
    with safe_open(str(path), framework="numpy") as handle:
        assert (handle.get_tensor("ssm.0") == state["ssm.0"].numpy()).all()
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    assert (8 + header_len) % 8 == 0
    spans = sorted(tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__")
    assert spans[0][0] == 0 and spans[-1][1] == len(data) - 8 - header_len
    assert all(a[1] == b[0] for a, b in pairwise(spans))


def test_the_default_root_follows_the_environment():
    assert default_snapshot_root({"SUPERLINEAR_SNAPSHOT_DIR": "/x/s", "XDG_CACHE_HOME": "/c"}) == Path("/x/s")
    assert default_snapshot_root({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == Path("/c/spl/snapshots")
    assert default_snapshot_root({"XDG_CACHE_HOME": "rel", "HOME": "/h"}) == Path("/h/.cache/spl/snapshots")
    assert default_snapshot_root({"HOME": "/h"}) == Path("/h/.cache/spl/snapshots")
