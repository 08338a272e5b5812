"""The hybrid model sharded over 2 gloo ranks (context-parallel attention, expert-parallel MoE) gives the
single-process logits and greedy tokens, in chunked prefill and in decode, for Superlinear and dense
attention (the dense model with 7 experts, shared 4 + 3; Mamba-2 split by heads in the Superlinear model,
replicated in the dense one); a sharded state's snapshot loads into a
single-process model and the other way round, through the filesystem store. One spawn runs both models."""

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
WORLD = 2
OVERRIDES = {"superlinear-exp": {}, "nemotron_h": {"n_routed_experts": 7}}
# Mamba-2 split by heads (2 SSM groups, one per rank) in one model, replicated in the other.
SPLIT_MAMBA = {"superlinear-exp": True, "nemotron_h": False}


def _model(model_type: str):
    cfg = HybridConfig.from_dict(tiny_config(model_type, **OVERRIDES[model_type]))
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


def _one_model(rank: int, world: int, model_type: str, prompt, hidden, snapshot):
    """Everything one rank checks, in one spawn: one expert-parallel MoE, the sharded generation, the
    gathered export, a fork, and a single-process snapshot loaded into the sharded model."""
    model = _model(model_type)
    moe = ExpertParallelMoE(model.layers[1].mixer, rank, world)
    with torch.inference_mode():
        moe_out = moe(hidden)
    model = shard_model(model, ShardPlan(rank, world, block=8, split_mamba=SPLIT_MAMBA[model_type]))
    mamba_kinds = {type(block.mixer).__name__ for block in model.layers if block.kind == "M"}
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
        "mamba": mamba_kinds,
        "export": exported,
        "fork": from_fork,
        "after_fork": after_fork,
        "from_snapshot": _continue(model, loaded, MORE),
    }


def _in_ranks(rank: int, world: int, inputs: dict) -> dict:
    return {model_type: _one_model(rank, world, model_type, *args) for model_type, args in inputs.items()}


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


def _single_process(model_type: str, tmp_path) -> tuple[dict, tuple]:
    """The single-process results of one model, and the inputs its ranks get."""
    prompt, hidden = random_ids(PROMPT, seed=len(model_type)), torch.randn(1, 23, 64)
    model = _model(model_type)
    with torch.inference_mode():
        moe = model.layers[1].mixer(hidden)
    state = HybridState.empty(model.config, 256, device="cpu", dtype=torch.float32)
    tokens, logits = _generate(model, state, prompt)
    export = list(state.export())
    snapshot = _through_store(tmp_path, f"single-{model_type}", export)
    want = {
        "model": model,
        "moe": moe,
        "tokens": tokens,
        "logits": logits,
        "export": export,
        "more": _continue(model, state, MORE),
    }
    return want, (prompt, hidden, snapshot)


def test_sharded_models_generate_the_single_process_tokens(tmp_path):
    wants, inputs = {}, {}
    for model_type in OVERRIDES:
        wants[model_type], inputs[model_type] = _single_process(model_type, tmp_path)
    ranks = spawn_ranks(_in_ranks, WORLD, inputs, timeout_s=90)
    for model_type, want in wants.items():
        experts = want["model"].config.n_routed_experts
        got_ranks = [r[model_type] for r in ranks]
        assert [r["experts"] for r in got_ranks] == [
            share(experts, r, WORLD)[1] - share(experts, r, WORLD)[0] for r in range(WORLD)
        ]
        want_kind = "HeadParallelMamba" if SPLIT_MAMBA[model_type] else "Mamba2Mixer"
        assert all(r["mamba"] == {want_kind} for r in got_ranks)
        _check_ranks(got_ranks, want)
        _check_snapshot(got_ranks[0]["export"], want, tmp_path / model_type)


def _check_ranks(got_ranks: list[dict], want: dict) -> None:
    for got in got_ranks:
        torch.testing.assert_close(got["moe"], want["moe"], rtol=1e-5, atol=1e-5)
        assert got["tokens"] == want["tokens"]
        for logits, expected in zip(got["logits"], want["logits"], strict=True):
            torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
        assert got["fork"] == got["after_fork"] == got["from_snapshot"] == want["more"]
    first, last = got_ranks[0]["logits"], got_ranks[-1]["logits"]
    assert all(torch.equal(a, b) for a, b in zip(first, last, strict=True))


def _check_snapshot(gathered: list, want: dict, root) -> None:
    """The gathered export is the single-process export, and continues in a single-process model."""
    assert [name for name, _ in gathered] == [name for name, _ in want["export"]]
    for (name, got), (_, expected) in zip(gathered, want["export"], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4, msg=name)
    model = want["model"]
    arrays = _through_store(root, "sharded", gathered)
    single = HybridState.from_arrays(model.config, arrays, max_seq_len=256, device="cpu", dtype=torch.float32)
    assert _continue(model, single, MORE) == want["more"]


def test_shares_cover_every_item_once():
    for total in (1, 7, 8, 128):
        for world in (1, 2, 3, 4):
            bounds = [share(total, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == total
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
