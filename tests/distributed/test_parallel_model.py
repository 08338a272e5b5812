"""The hybrid model sharded over 2 and 3 gloo ranks (context-parallel attention, expert-parallel MoE)
gives the single-process logits and greedy tokens, in chunked prefill and in decode; a sharded state's
snapshot loads into a single-process model and the other way round, through the filesystem store."""

import pytest
import torch
from superlinear.adapters.distributed import import_sharded, spawn_ranks
from superlinear.adapters.distributed.model import ShardPlan, shard_model, sharded_state
from superlinear.adapters.distributed.moe import ExpertParallelMoE, share
from superlinear.adapters.hybrid import HybridConfig, HybridState
from superlinear.adapters.hybrid.random_weights import random_model
from superlinear.adapters.hybrid.testing import random_ids, tiny_config
from superlinear.core.ports.snapshots import SnapshotManifest
from superlinear.storage.filesystem import FilesystemSnapshotStore

PROMPT, CHUNKS, STEPS, MORE = 70, (41, 29), 6, 3


def _model(model_type: str):
    cfg = HybridConfig.from_dict(tiny_config(model_type))
    return random_model(cfg, device="cpu", dtype=torch.float32, seed=7)


def _generate(model, state, prompt: torch.Tensor):
    """Chunked prefill of ``prompt``, then STEPS greedy tokens; returns (tokens, logits of every step)."""
    logits, start = [], 0
    with torch.inference_mode():
        for size in CHUNKS:
            logits.append(model(prompt[None, start : start + size], state, last_only=False))
            start += size
        tokens = []
        for _ in range(STEPS):
            tokens.append(int(state.logits.argmax()))
            logits.append(model(torch.tensor([[tokens[-1]]]), state))
    return tokens, logits


def _continue(model, state, steps: int) -> list[int]:
    """Greedy tokens from ``state``'s logits on."""
    tokens = []
    with torch.inference_mode():
        for _ in range(steps):
            tokens.append(int(state.logits.argmax()))
            model(torch.tensor([[tokens[-1]]]), state)
    return tokens


def _in_ranks(rank: int, world: int, model_type: str, prompt, hidden, snapshot):
    """Everything one rank checks, in one spawn: one expert-parallel MoE, the sharded generation, the
    gathered export, a fork, and a single-process snapshot loaded into the sharded model."""
    model = _model(model_type)
    moe = ExpertParallelMoE(model.layers[1].mixer, rank, world)
    with torch.inference_mode():
        moe_out = moe(hidden)
    model = shard_model(model, ShardPlan(rank, world, block=8))
    state = sharded_state(model, 256)
    tokens, logits = _generate(model, state, prompt)
    exported = list(state.export())
    fork = state.fork()
    from_fork, after_fork = _continue(model, fork, MORE), _continue(model, state, MORE)
    loaded = import_sharded(model, snapshot, 256)
    return {
        "tokens": tokens,
        "logits": logits,
        "moe": moe_out,
        "experts": moe.stop - moe.first,
        "export": exported,
        "fork": from_fork,
        "after_fork": after_fork,
        "from_snapshot": _continue(model, loaded, MORE),
    }


def _through_store(root, name: str, arrays) -> dict[str, torch.Tensor]:
    """Save ``arrays`` as a snapshot in a filesystem store and read them back."""
    store = FilesystemSnapshotStore(root)
    manifest = SnapshotManifest(
        snapshot_id=name,
        created_at=1.0,
        model={"dtype": "float32"},
        ledger=(),
        transcript=(),
        max_seq_len=256,
    )
    store.save(manifest, arrays)
    return {key: torch.as_tensor(value) for key, value in store.load(name)[1].items()}


@pytest.mark.parametrize(("world", "model_type"), [(2, "superlinear-exp"), (3, "nemotron_h")])
def test_sharded_model_generates_the_single_process_tokens(world, model_type, tmp_path):
    prompt, hidden = random_ids(PROMPT, seed=world), torch.randn(1, 23, 64)
    model = _model(model_type)
    with torch.inference_mode():
        want_moe = model.layers[1].mixer(hidden)
    state = HybridState.empty(model.config, 256, device="cpu", dtype=torch.float32)
    want_tokens, want_logits = _generate(model, state, prompt)
    want_export = list(state.export())
    snapshot = _through_store(tmp_path, "single", want_export)
    want_more = _continue(model, state, MORE)

    ranks = spawn_ranks(_in_ranks, world, model_type, prompt, hidden, snapshot, timeout_s=90)
    assert [r["experts"] for r in ranks] == [
        share(8, r, world)[1] - share(8, r, world)[0] for r in range(world)
    ]
    for got in ranks:
        torch.testing.assert_close(got["moe"], want_moe, rtol=1e-5, atol=1e-5)
        assert got["tokens"] == want_tokens
        for logits, want in zip(got["logits"], want_logits, strict=True):
            torch.testing.assert_close(logits, want, rtol=1e-4, atol=1e-4)
        assert got["fork"] == got["after_fork"] == got["from_snapshot"] == want_more
    assert all(torch.equal(a, b) for a, b in zip(ranks[0]["logits"], ranks[-1]["logits"], strict=True))

    gathered = ranks[0]["export"]
    assert [name for name, _ in gathered] == [name for name, _ in want_export]
    for (name, got), (_, want) in zip(gathered, want_export, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4, msg=name)
    single = HybridState.from_arrays(
        model.config,
        _through_store(tmp_path, "sharded", gathered),
        max_seq_len=256,
        device="cpu",
        dtype=torch.float32,
    )
    assert _continue(model, single, MORE) == want_more


def test_shares_cover_every_item_once():
    for total in (1, 7, 8, 128):
        for world in (1, 2, 3, 4):
            bounds = [share(total, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == total
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
