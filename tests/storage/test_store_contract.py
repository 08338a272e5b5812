"""One contract suite for every SnapshotStore: the in-memory twin and the filesystem store."""

from __future__ import annotations

import time

import pytest
import torch

from superlinear.core.errors import Conflict, InvalidRequest, NotFound
from superlinear.core.ports import SnapshotManifest, SnapshotStore
from superlinear.core.values import Message, SnapshotInfo
from superlinear.storage import FilesystemSnapshotStore, MemorySnapshotStore


@pytest.fixture(params=["memory", "filesystem"])
def store(request, tmp_path) -> SnapshotStore:
    if request.param == "memory":
        return MemorySnapshotStore()
    return FilesystemSnapshotStore(tmp_path / "snapshots")


def random_arrays(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Fresh random tensors of several dtypes and odd shapes, including a scalar and an empty one."""
    return {
        "layers.0.k": torch.randn(3, 5, 7, generator=generator),
        "layers.0.v": torch.randn(3, 5, 7, generator=generator).to(torch.bfloat16),
        "layers.1.conv": torch.randn(1, 13, generator=generator).to(torch.float16),
        "layers.1.ssm": torch.randn(2, 3, 11, 5, generator=generator, dtype=torch.float64),
        "cursor": torch.randint(0, 10_000, (), generator=generator),
        "ids": torch.randint(-(2**31), 2**31 - 1, (17,), generator=generator, dtype=torch.int32),
        "mask": torch.rand(9, generator=generator) > 0.5,
        "bytes": torch.randint(0, 255, (6, 1), generator=generator, dtype=torch.uint8),
        "empty": torch.randn(0, 4, generator=generator),
    }


def a_manifest(snapshot_id: str, created_at: float, generator: torch.Generator, **fields) -> SnapshotManifest:
    ledger = tuple(torch.randint(0, 150_000, (257,), generator=generator).tolist())
    transcript = (
        Message("system", "Réponds briefly. 日本語も大丈夫 🚀"),
        Message("user", "Ünïcödé question\nwith a newline"),
        Message("assistant", "answer", reasoning_content="thought ∑", name="bot"),
    )
    return SnapshotManifest(
        snapshot_id=snapshot_id,
        created_at=created_at,
        model={"config_sha256": "ab" * 32, "dtype": "bfloat16", "tokenizer": "tok-1"},
        ledger=ledger,
        transcript=transcript,
        max_seq_len=4096,
        extra={"kernel": {"block": 64, "sw": 128}, "note": "ünï"},
        **fields,
    )


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(int(time.time_ns() % 2**31))


def test_a_saved_snapshot_loads_back_bit_for_bit(store, generator):
    arrays = random_arrays(generator)
    manifest = a_manifest("chat-1", 1_700_000_000.5, generator, title="Title ✓", tags=("a", "b"))
    info = store.save(manifest, arrays.items())
    loaded_manifest, loaded = store.load("chat-1")
    assert loaded_manifest == manifest
    assert set(loaded) == set(arrays)
    for name, tensor in arrays.items():
        assert loaded[name].dtype == tensor.dtype, name
        assert loaded[name].shape == tensor.shape, name
        assert torch.equal(loaded[name], tensor), name
    assert info == store.get("chat-1")
    assert (info.tokens, info.message_count, info.title, info.tags) == (257, 3, "Title ✓", ("a", "b"))
    assert info.bytes >= sum(t.nbytes for t in arrays.values())


def test_save_takes_a_one_shot_iterator(store, generator):
    arrays = random_arrays(generator)
    store.save(a_manifest("gen", 1.0, generator), ((name, t) for name, t in arrays.items()))
    assert torch.equal(store.load("gen")[1]["layers.0.k"], arrays["layers.0.k"])


def test_changing_loaded_arrays_does_not_change_the_snapshot(store, generator):
    arrays = random_arrays(generator)
    store.save(a_manifest("s", 1.0, generator), arrays.items())
    original = arrays["layers.0.k"].clone()
    arrays["layers.0.k"].add_(1.0)
    store.load("s")[1]["layers.0.k"].add_(1.0)
    assert torch.equal(store.load("s")[1]["layers.0.k"], original)


def test_manifest_reads_the_manifest_that_load_returns(store, generator):
    saved = a_manifest("m1", 5.0, generator, title="t", tags=("x",))
    store.save(saved, random_arrays(generator).items())
    assert store.manifest("m1") == store.load("m1")[0]
    assert store.manifest("m1").ledger == saved.ledger
    assert store.manifest("m1").transcript == saved.transcript


def test_list_is_newest_first_and_get_matches(store, generator):
    for snapshot_id, created in [("old", 100.0), ("newest", 300.0), ("middle", 200.0)]:
        store.save(a_manifest(snapshot_id, created, generator), random_arrays(generator).items())
    listed = store.list()
    assert [info.snapshot_id for info in listed] == ["newest", "middle", "old"]
    assert all(isinstance(info, SnapshotInfo) for info in listed)
    assert listed == [store.get(info.snapshot_id) for info in listed]


def test_an_empty_store_lists_nothing(store):
    assert store.list() == []


def test_patch_changes_only_title_description_and_tags(store, generator):
    manifest = a_manifest("p", 5.0, generator, title="before")
    store.save(manifest, random_arrays(generator).items())
    info = store.patch("p", title="after", description="desc ✎", tags=["x", "y"])
    assert (info.title, info.description, info.tags) == ("after", "desc ✎", ("x", "y"))
    assert store.get("p") == info
    loaded, _ = store.load("p")
    assert (loaded.ledger, loaded.transcript, loaded.created_at) == (
        manifest.ledger,
        manifest.transcript,
        manifest.created_at,
    )
    assert store.patch("p", title=None).title is None
    assert store.get("p").description == "desc ✎"


@pytest.mark.parametrize(
    "fields", [{"ledger": ()}, {"created_at": 9.0}, {"title": 3}, {"tags": "abc"}, {"tags": [1]}]
)
def test_patch_rejects_other_fields_and_bad_values(store, generator, fields):
    store.save(a_manifest("p", 5.0, generator), random_arrays(generator).items())
    with pytest.raises(InvalidRequest):
        store.patch("p", **fields)
    assert store.get("p").title is None


def test_delete_removes_the_snapshot_and_frees_its_id(store, generator):
    store.save(a_manifest("d", 1.0, generator), random_arrays(generator).items())
    store.save(a_manifest("keep", 2.0, generator), random_arrays(generator).items())
    store.delete("d")
    with pytest.raises(NotFound):
        store.get("d")
    assert [info.snapshot_id for info in store.list()] == ["keep"]
    store.save(a_manifest("d", 3.0, generator), random_arrays(generator).items())
    assert store.get("d").created_at == 3.0


@pytest.mark.parametrize("operation", ["load", "manifest", "get", "delete", "patch"])
def test_unknown_ids_are_not_found(store, operation):
    with pytest.raises(NotFound):
        getattr(store, operation)("missing")


def test_saving_an_existing_id_is_a_conflict_and_keeps_the_original(store, generator):
    first = random_arrays(generator)
    store.save(a_manifest("dup", 1.0, generator, title="first"), first.items())
    with pytest.raises(Conflict):
        store.save(a_manifest("dup", 2.0, generator, title="second"), random_arrays(generator).items())
    manifest, loaded = store.load("dup")
    assert manifest.title == "first"
    assert torch.equal(loaded["layers.0.k"], first["layers.0.k"])


BAD_IDS = ["../x", "a/b", "", "x" * 129, ".hidden", "..", "a\\b", "sp ace", "new\n", "-lead", "_lead"]


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_bad_ids_are_rejected_everywhere(store, generator, bad_id):
    with pytest.raises(InvalidRequest) as caught:
        store.save(a_manifest(bad_id, 1.0, generator), random_arrays(generator).items())
    assert caught.value.param == "snapshot_id"
    for operation in ("load", "manifest", "get", "delete"):
        with pytest.raises(InvalidRequest):
            getattr(store, operation)(bad_id)
    with pytest.raises(InvalidRequest):
        store.patch(bad_id, title="t")
    assert store.list() == []


def test_the_longest_valid_id_works(store, generator):
    snapshot_id = "A" + "b.-_9" * 25 + "xy"
    assert len(snapshot_id) == 128
    store.save(a_manifest(snapshot_id, 1.0, generator), random_arrays(generator).items())
    assert store.get(snapshot_id).snapshot_id == snapshot_id


def test_both_stores_satisfy_the_port(store):
    assert isinstance(store, SnapshotStore)
