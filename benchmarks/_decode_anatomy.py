"""Where a CUDA decode step goes: kernels per token, graph time per layer kind, bytes read, bandwidth.

Used by `full_size_shape.py` after its decode; every function runs on a model already on CUDA.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable

import torch

from superlinear.adapters.hybrid.model import HybridLM
from superlinear.adapters.hybrid.state import HybridState


def _graph_ms(body: Callable[[], object], replays: int = 50) -> float:
    """Capture `body` once (after an eager warm-up) and return the median replay time in ms."""
    body()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        body()
    times = []
    for _ in range(5):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(replays):
            graph.replay()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / replays)
    return statistics.median(times)


def kernels_per_step(model: HybridLM, state: HybridState) -> dict:
    """Count the GPU kernels of one eager decode step (the nodes of its graph) with the profiler."""
    ids = torch.zeros(1, 1, dtype=torch.long, device=model.device)
    position = torch.tensor([state.cursor - 1], device=model.device)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        model.decode_logits(ids, position, state)
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    top = Counter(e.name[:60] for e in kernels).most_common(8)
    return {"kernels_per_step": len(kernels), "most_common": top}


def layer_profile(model: HybridLM, state: HybridState) -> dict[str, float]:
    """Graph replay ms of one decode step's parts, by layer kind (one layer timed, times the count).

    Replays rewrite one KV position and advance the Mamba state, so run this after the measured decode.
    """
    position = torch.tensor([state.cursor - 1], device=model.device)
    hidden = torch.randn(1, 1, model.config.hidden_size, device=model.device, dtype=model.dtype)
    out: dict[str, float] = {}
    kinds = model.config.layer_kinds
    names = {"M": "mamba", "E": "moe", "*": "attention", "-": "mlp"}
    for kind in sorted(set(kinds)):
        i = kinds.index(kind)
        block, cache = model.layers[i], state.layers[i]
        ms = _graph_ms(lambda block=block, cache=cache: block(hidden, cache, position))
        out[f"{names[kind]} x{kinds.count(kind)}"] = round(ms * kinds.count(kind), 3)
    ids = torch.zeros(1, 1, dtype=torch.long, device=model.device)
    out["embed + norm_f + lm_head"] = round(
        _graph_ms(lambda: model.lm_head(model.norm_f(model.embeddings(ids))).float()), 3
    )
    out["whole step"] = round(_graph_ms(lambda: model.decode_logits(ids, position, state)), 3)
    return out


def bytes_per_token(model: HybridLM, state: HybridState) -> int:
    """The fewest bytes a decode token reads: weights it uses once (k experts per MoE layer, one
    embedding row), the Mamba states read and written, and no KV (attention reads are small)."""
    cfg = model.config
    total = 0
    for name, p in model.named_parameters():
        size = p.numel() * p.element_size()
        if ".experts." in name and "shared" not in name:
            size = size * cfg.num_experts_per_tok // cfg.n_routed_experts
        elif name.startswith("embeddings"):
            size = p.shape[1] * p.element_size()
        total += size
    for cache in state.layers:
        if cache is not None and not hasattr(cache, "k"):
            total += 2 * sum(t.numel() * t.element_size() for t in cache.buffers())
    return total


def copy_bandwidth(device: torch.device, gib: float = 2.0) -> float:
    """Measured device-to-device copy bandwidth in bytes/s (bytes read plus bytes written)."""
    src = torch.randn(int(gib * 2**30 / 4), device=device)
    dst = torch.empty_like(src)
    ms = _graph_ms(lambda: dst.copy_(src), replays=10)
    return 2 * src.numel() * 4 / (ms / 1000)


def prefill_profile(model: HybridLM, chunk: int = 8192) -> dict[str, float]:
    """Eager ms of one prefill chunk through one Mamba and one MoE layer (times their counts), on a
    throwaway state at position 0; plus the final norm and head on one row. Attention is left out (it
    depends on the context; benchmarks/attention.py measures it)."""
    kinds = model.config.layer_kinds
    state = HybridState.empty(model.config, chunk, device=model.device, dtype=model.dtype)
    hidden = torch.randn(1, chunk, model.config.hidden_size, device=model.device, dtype=model.dtype)
    out: dict[str, float] = {}
    for kind, name in (("M", "mamba"), ("E", "moe")):
        i = kinds.index(kind)
        times = []
        for _ in range(3):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model.layers[i](hidden, state.layers[i], 0)
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
        out[f"{name} x{kinds.count(kind)}"] = round(statistics.median(times) * kinds.count(kind), 1)
    state.release()
    return out
