"""The sharded ModelPort (this process as rank 0, one spawned gloo worker) behaves like TorchModel:
same greedy tokens through append, batched decode, checkpoint/restore and fork, and snapshots that
move between the sharded and the single-process port both ways."""

import pytest

from superlinear.adapters.distributed.port import launch_sharded_model
from superlinear.adapters.hybrid.testing import random_ids, tiny_config, write_random_checkpoint
from superlinear.adapters.torch_model import TorchModel
from superlinear.core.errors import InvalidRequest, SnapshotError


def _greedy(port, state, steps: int) -> list[int]:
    tokens = []
    for _ in range(steps):
        tokens.append(int(state.logits.argmax()))
        port.decode_batch([state], [tokens[-1]])
    return tokens


@pytest.fixture(scope="module")
def ports(tmp_path_factory):
    path = write_random_checkpoint(tmp_path_factory.mktemp("tiny"), tiny_config(), seed=3)
    single = TorchModel.from_dir(path, device="cpu", dtype="float32", chunk_size=16)
    sharded = launch_sharded_model(path, 2, device="cpu", dtype="float32", chunk_size=16, block=8)
    yield single, sharded
    sharded.close()


@pytest.mark.timeout(120)
def test_the_sharded_port_generates_like_the_single_process_port(ports):
    single, sharded = ports
    prompt = random_ids(50, seed=5).tolist()
    want = single.new_state(256)
    single.append(want, prompt)
    mark = single.checkpoint(want)
    want_tokens = _greedy(single, want, 5)
    single.restore(want, mark)
    shorter = single.new_state(256)
    single.append(shorter, prompt[:20])
    want_shorter = _greedy(single, shorter, 2)

    state = sharded.new_state(256)
    sharded.append(state, prompt)
    checkpoint = sharded.checkpoint(state)
    other = sharded.new_state(256)
    sharded.append(other, prompt[:20])
    # Two sessions decoded in one batch: each row gets its own token.
    first = [int(state.logits.argmax()), int(other.logits.argmax())]
    sharded.decode_batch([state, other], first)
    assert [first[0], *_greedy(sharded, state, 4)] == want_tokens
    assert [first[1], *_greedy(sharded, other, 1)] == want_shorter
    late = sharded.checkpoint(state)
    sharded.restore(state, checkpoint)
    # Refused on every rank alike (the KV past the earlier checkpoint may be overwritten); all stay in step.
    with pytest.raises(ValueError, match="no longer valid"):
        sharded.restore(state, late)
    fork = sharded.fork(state)
    assert _greedy(sharded, fork, 5) == want_tokens
    assert _greedy(sharded, state, 5) == want_tokens
    with pytest.raises(InvalidRequest):
        sharded.append(state, [10**6])
    sharded.release(other)

    # A single-process snapshot continues on the sharded port, and a sharded one on the single port.
    into_sharded = sharded.import_state(dict(single.export_state(want)), 256)
    assert _greedy(sharded, into_sharded, 5) == want_tokens
    sharded.restore(state, checkpoint)
    into_single = single.import_state(dict(sharded.export_state(state)), 256)
    assert _greedy(single, into_single, 5) == want_tokens
    # A snapshot that doesn't fit is refused before any worker hears of it; the ranks stay in step.
    broken = dict(single.export_state(want))
    broken.pop("layers.3.k")
    with pytest.raises(SnapshotError, match="layers.3.k"):
        sharded.import_state(broken, 256)
    assert _greedy(sharded, sharded.fork(into_sharded), 2) == _greedy(single, single.fork(into_single), 2)
    status = sharded.ranks_status()
    assert [row["rank"] for row in status] == [0, 1] and all(row["alive"] for row in status)
    # Each rank holds half the routed experts (8 of them, 4 + 4): equal shares, less than the whole model.
    assert (
        status[0]["weight_bytes"]
        == status[1]["weight_bytes"]
        < sum(p.numel() * p.element_size() for p in single.lm.parameters())
    )


@pytest.mark.timeout(120)
def test_a_stopped_worker_shows_in_the_status_and_the_port_still_closes(ports):
    _, sharded = ports
    worker = sharded._workers.processes[0]
    worker.kill()
    worker.join(10)
    assert [row["alive"] for row in sharded.ranks_status()] == [True, False]
    with pytest.raises(RuntimeError):
        sharded.new_state(64)
    sharded.close()
    assert sharded.link.closed
