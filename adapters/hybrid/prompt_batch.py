"""One prompt forward over many sequences: B states each take their own run of tokens in one forward.

Rows are right-padded to the longest run T, so every row's tokens sit at the offsets they have alone:
embeddings, norms, projections, MLP and MoE run on [B, T, H] together (token by token, padding included);
Mamba-2 layers scan all rows at once from each row's own conv/SSM state, with the padded positions made
inert (dt = 0 keeps the state, zero x/B/C add nothing, as the scan's own chunk padding does alone), and
each conv window is taken at the row's last real token; attention writes each row's keys at the row's
position and attends over its own cache: Superlinear attention takes rows that end at similar lengths in
one call (keys right-aligned and left-padded with the kernel's mask, queries right-aligned) where the
kernels take a mask (`masked_rows`: the CPU reference, the Triton kernels on CUDA in fp16/bf16), other rows
one at a time. Padded positions never reach a state. `batchable` says on which models `TorchModel` runs it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from superlinear.kernels import superlinear_attention

from .attention import DenseAttention, SuperlinearAttention, dense_causal_attention
from .batch import length_groups
from .mamba import Mamba2Mixer, _intra_chunk
from .model import HybridLM
from .state import HybridState, KVCache, MambaCache

__all__ = ["batchable", "masked_rows", "prompt_step", "prompt_attention_rows", "prompt_mamba_rows",
           "ssd_scan_rows"]

# SUPERLINEAR_BATCHED_PROMPTS=0 runs prompts one row at a time on every device.
_ENV = "SUPERLINEAR_BATCHED_PROMPTS"


def batchable(lm: HybridLM) -> bool:
    """Whether `prompt_step` runs for `lm`: on CPU, and on CUDA (its PyTorch scan and per-row or masked
    attention calls hold there too; checked against per-row appends by the GPU tests); not when turned off."""
    return lm.device.type in ("cpu", "cuda") and os.environ.get(_ENV, "1") != "0"


def masked_rows(hidden: torch.Tensor) -> bool:
    """Whether Superlinear attention may take rows of different lengths in one left-padded, masked call:
    the CPU reference, and CUDA tensors in fp16/bf16 (the Triton kernels' mask; other CUDA dtypes run the
    reference, which syncs per row anyway)."""
    if hidden.device.type == "cpu":
        return True
    return hidden.is_cuda and hidden.dtype in (torch.float16, torch.bfloat16)


def prompt_step(lm: HybridLM, states: Sequence[HybridState], runs: Sequence[Sequence[int]]) -> torch.Tensor:
    """Append `runs[b]` (at least one token) to `states[b]` for every b; return fp32 logits [B, V].

    Each state's cursor advances by its run and its next-token logits become its row of the result.
    The Mamba-2 scan is the PyTorch one (see `batchable`); callers check the rows first.
    """
    lengths = [len(run) for run in runs]
    for state, n in zip(states, lengths, strict=True):
        state.reserve(state.cursor + n)
    positions = [state.cursor for state in states]
    width = max(lengths)
    ids = torch.zeros(len(runs), width, dtype=torch.long, device=lm.device)
    for b, run in enumerate(runs):
        ids[b, : len(run)] = torch.tensor(list(run), dtype=torch.long)
    real = torch.arange(width, device=lm.device)[None, :] < torch.tensor(lengths, device=lm.device)[:, None]
    hidden = lm.embeddings(ids)  # [B, T, H]
    for i, block in enumerate(lm.layers):
        caches = [state.layers[i] for state in states]
        normed = block.norm(hidden)
        if block.kind == "*":
            mixed = prompt_attention_rows(block.mixer, normed, caches, positions, lengths)
        elif block.kind == "M":
            mixed = prompt_mamba_rows(block.mixer, normed, caches, lengths, real)
        else:
            mixed = block.mixer(normed)
        hidden = hidden + mixed
    last = hidden[torch.arange(len(runs), device=lm.device), torch.tensor(lengths, device=lm.device) - 1]
    logits = lm.lm_head(lm.norm_f(last[:, None])).float()[:, 0]  # [B, V]
    for state, pos, n, row in zip(states, positions, lengths, logits, strict=True):
        state.cursor = pos + n
        state.logits = row.clone()
    return logits


def prompt_attention_rows(
    att: DenseAttention, hidden: torch.Tensor, caches: Sequence[KVCache], positions: Sequence[int],
    lengths: Sequence[int],
) -> torch.Tensor:
    """Attention of each row's run, `hidden` [B, T, H] right-padded, row b at positions[b]..; return [B, T, H]."""
    batch, width = hidden.shape[:2]
    k, v, q2 = (_heads(att, proj(hidden), heads) for proj, heads in
                ((att.k_proj, att.num_kv_heads), (att.v_proj, att.num_kv_heads), (att.q_proj, att.num_heads)))
    superlinear = isinstance(att, SuperlinearAttention)
    q1 = _heads(att, att.q1_proj(hidden), att.num_heads) if superlinear else None
    views = [cache.write(pos, k[b : b + 1, :, :n], v[b : b + 1, :, :n])
             for b, (cache, pos, n) in enumerate(zip(caches, positions, lengths, strict=True))]
    out = q2.new_zeros(batch, att.num_heads, width, att.head_dim)
    ends = [pos + n - 1 for pos, n in zip(positions, lengths, strict=True)]
    grouped = superlinear and masked_rows(hidden)
    for rows in length_groups(ends) if grouped else [[b] for b in range(batch)]:
        if len(rows) > 1:
            _superlinear_padded_runs(att, q1, q2, views, lengths, rows, out)
            continue
        (b,) = rows
        keys, values = views[b]
        pos, n = positions[b], lengths[b]
        if superlinear:
            where = torch.arange(pos, pos + n, device=hidden.device)
            out[b : b + 1, :, :n] = superlinear_attention(q1[b : b + 1, :, :n], q2[b : b + 1, :, :n], keys, values,
                                                          where, params=att.params, block_q=att.block_q)
        else:
            out[b : b + 1, :, :n] = dense_causal_attention(q2[b : b + 1, :, :n], keys, values, pos)
    return att.o_proj(out.transpose(1, 2).reshape(batch, width, -1))


def _heads(att: DenseAttention, x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, T, heads * D] -> [B, heads, T, D]."""
    return x.view(x.shape[0], x.shape[1], heads, att.head_dim).transpose(1, 2)


def _superlinear_padded_runs(att: SuperlinearAttention, q1: torch.Tensor, q2: torch.Tensor, views,
                             lengths: Sequence[int], rows: Sequence[int], out: torch.Tensor) -> None:
    """One Superlinear call for `rows`: keys right-aligned (left-padded, masked), queries right-aligned.

    Row b's run then sits at the last lengths[b] query slots, at the last positions of its keys, so the
    kernel's left-padding mask makes it attend exactly as alone; its outputs go to out[b, :, :n].
    """
    total = max(views[b][0].shape[2] for b in rows)
    width = max(lengths[b] for b in rows)
    heads, dim = views[rows[0]][0].shape[1], views[rows[0]][0].shape[3]
    keys = views[rows[0]][0].new_zeros(len(rows), heads, total, dim)
    values = torch.zeros_like(keys)
    mask = torch.zeros(len(rows), total, dtype=torch.bool, device=keys.device)
    p1 = q1.new_zeros(len(rows), q1.shape[1], width, q1.shape[3])
    p2 = torch.zeros_like(p1)
    for i, b in enumerate(rows):
        k, v = views[b]
        m, n = k.shape[2], lengths[b]
        keys[i, :, total - m :], values[i, :, total - m :] = k[0], v[0]
        mask[i, total - m :] = True
        p1[i, :, width - n :], p2[i, :, width - n :] = q1[b, :, :n], q2[b, :, :n]
    where = torch.arange(total - width, total, device=keys.device)
    res = superlinear_attention(p1, p2, keys, values, where, mask, params=att.params, block_q=att.block_q)
    for i, b in enumerate(rows):
        n = lengths[b]
        out[b, :, :n] = res[i, :, width - n :].to(out.dtype)


def prompt_mamba_rows(m: Mamba2Mixer, hidden: torch.Tensor, caches: Sequence[MambaCache], lengths: Sequence[int],
                      real: torch.Tensor) -> torch.Tensor:
    """Each row's run through a Mamba-2 mixer from its own cache, `hidden` [B, T, H] right-padded; the
    caches update to each row's last real token; return [B, T, H] (padded positions: unused values)."""
    batch, width = hidden.shape[:2]
    z, xbc, dt = m.in_proj(hidden).split([m.inner, m.conv_dim, m.num_heads], dim=-1)
    window = caches[0].conv.shape[-1]
    full = torch.cat([torch.cat([c.conv for c in caches]), xbc.transpose(1, 2)], dim=-1)  # [B, C, w + T]
    for b, (cache, n) in enumerate(zip(caches, lengths, strict=True)):
        cache.conv.copy_(full[b : b + 1, :, n : n + window])
    xbc = F.silu(F.conv1d(full, m.conv1d.weight, m.conv1d.bias, groups=m.conv_dim)).transpose(1, 2)  # [B, T, C]
    keep = real[:, :, None]
    groups_n = m.n_groups * m.state_size
    x, bmat, cmat = (xbc.float() * keep).split([m.inner, groups_n, groups_n], dim=-1)
    x = x.reshape(batch, width, m.num_heads, m.head_dim)
    bmat, cmat = bmat.reshape(batch, width, m.n_groups, -1), cmat.reshape(batch, width, m.n_groups, -1)
    dt = m._dt(dt) * keep  # [B, T, nh]; 0 at padded positions: the state stays as it is
    a = -torch.exp(m.A_log.float())
    initial = torch.cat([c.ssm for c in caches])  # [B, nh, P, N]
    y, final = ssd_scan_rows(x, dt, a, bmat, cmat, scan_chunk(m.chunk_size, width), initial)
    for b, cache in enumerate(caches):
        cache.ssm.copy_(final[b : b + 1])
    y = y + x * m.D.float()[:, None]
    y = m.norm(y.reshape(batch, width, m.inner), z)
    return m.out_proj(y.to(hidden.dtype))


def scan_chunk(chunk_size: int, width: int) -> int:
    """The SSD chunk for runs of at most `width` tokens: the model's chunk, or the power of two (>= 16)
    that holds a shorter run. The same sums either way (a chunk's padding adds exact zeros); a short run
    then skips most of the chunk's [Q, Q] work."""
    return min(chunk_size, max(16, 1 << (width - 1).bit_length()))


def ssd_scan_rows(
    x: torch.Tensor, dt: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, chunk_size: int,
    initial: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`ssd_scan` for B rows at once: x [B, L, nh, P], dt [B, L, nh], a [nh], b and c [B, L, G, N],
    initial [B, nh, P, N]; all fp32. Returns (y [B, L, nh, P] without the D skip, final states [B, nh, P, N]).

    Every row is chunked from its own first token, as `ssd_scan` chunks it alone; a row's positions with
    dt = 0 and x = 0 leave its state as it is.
    """
    batch, length, heads, head_dim = x.shape
    per_group = heads // b.shape[2]
    b = b.repeat_interleave(per_group, dim=2)  # [B, L, nh, N]
    c = c.repeat_interleave(per_group, dim=2)
    pad = (-length) % chunk_size
    xdt, adt, b, c = (_chunked_rows(t, pad, chunk_size) for t in (x * dt[..., None], dt * a, b, c))
    # [B * n_chunks, Q, ...]; chunks are independent until the states are carried, row by row, below.
    a_cum = torch.cumsum(adt, dim=1)
    y_diag = _intra_chunk(xdt, adt, b, c)
    decay_to_end = torch.exp(a_cum[:, -1:] - a_cum)
    chunk_states = torch.einsum("clhn,clh,clhp->chpn", b, decay_to_end, xdt)
    n = chunk_states.shape[0] // batch
    rows_states = chunk_states.reshape(batch, n, *chunk_states.shape[1:]).transpose(0, 1)  # [n, B, nh, P, N]
    rows_decay = torch.exp(a_cum[:, -1]).reshape(batch, n, heads).transpose(0, 1)  # [n, B, nh]
    starts, state = [], initial
    for i in range(n):
        starts.append(state)
        state = state * rows_decay[i][:, :, None, None] + rows_states[i]
    final = state
    starts = torch.stack(starts, dim=1).reshape(batch * n, heads, head_dim, -1)
    y_off = torch.einsum("clhn,chpn,clh->clhp", c, starts, torch.exp(a_cum))
    y = (y_diag + y_off).reshape(batch, -1, heads, head_dim)[:, :length]
    return y, final


def _chunked_rows(t: torch.Tensor, pad: int, chunk_size: int) -> torch.Tensor:
    """Zero-pad `t` [B, L, ...] along L to a multiple of `chunk_size`; split: [B * n_chunks, Q, ...]."""
    if pad:
        t = torch.cat([t, t.new_zeros((t.shape[0], pad, *t.shape[2:]))], dim=1)
    return t.reshape(-1, chunk_size, *t.shape[2:])
