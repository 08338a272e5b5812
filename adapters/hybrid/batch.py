"""One decode step over many sequences: B states of any lengths each take one token in one forward.

Embeddings, norms, projections, MLP and MoE run on [B, 1, H] together; Mamba-2 layers update their
stacked conv/SSM states at once; attention runs at each row's own position over its own cache: where the
Triton kernels run (CUDA or the interpreter, fp16/bf16), Superlinear attention of all rows is one batched
decode over the rows' own buffers (`span.decode.triton_decode_rows`); otherwise on CPU it takes rows of
similar lengths in one call (right-aligned, left-padded with the kernel's mask), other rows one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from superlinear.kernels import superlinear_attention
from superlinear.kernels.superlinear.search.prefill import supports
from superlinear.kernels.superlinear.span.decode import triton_decode_rows

from .attention import DenseAttention, SuperlinearAttention, dense_causal_attention
from .mamba import Mamba2Mixer
from .mamba_kernels import fused_ops
from .model import HybridLM
from .state import HybridState, KVCache, MambaCache

__all__ = ["decode_step", "attention_rows", "project_rows", "mamba_rows", "ssm_step_rows", "length_groups"]


def decode_step(lm: HybridLM, states: Sequence[HybridState], token_ids: Sequence[int],
                attend: Callable[..., torch.Tensor] | None = None) -> torch.Tensor:
    """Append `token_ids[b]` to `states[b]` for every b; return fp32 logits [B, V] (also each state's).

    `attend(mixer, hidden, caches, positions)` runs the attention layers (default `attention_rows`); a Mamba
    mixer with its own `rows(hidden, caches)` (a sharded one) runs that, others `mamba_rows`.
    """
    for state in states:
        state.reserve(state.cursor + 1)
    positions = [state.cursor for state in states]
    ids = torch.tensor(list(token_ids), dtype=torch.long, device=lm.device)[:, None]
    hidden = lm.embeddings(ids)  # [B, 1, H]
    for i, block in enumerate(lm.layers):
        caches = [state.layers[i] for state in states]
        normed = block.norm(hidden)
        if block.kind == "*":
            mixed = (attend or attention_rows)(block.mixer, normed, caches, positions)
        elif block.kind == "M":
            own = getattr(block.mixer, "rows", None)
            mixed = own(normed, caches) if own is not None else mamba_rows(block.mixer, normed, caches)
        else:
            mixed = block.mixer(normed)
        hidden = hidden + mixed
    logits = lm.lm_head(lm.norm_f(hidden)).float()[:, 0]  # [B, V]
    for state, pos, row in zip(states, positions, logits, strict=True):
        state.cursor = pos + 1
        state.logits = row.clone()
    return logits


def project_rows(att: DenseAttention, hidden: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor,
                                                                       torch.Tensor]:
    """Q1 (None for dense attention), Q2, K and V of one new token per row, each [B, heads, 1, head_dim]."""
    batch = hidden.shape[0]
    k = att.k_proj(hidden).view(batch, 1, att.num_kv_heads, att.head_dim).transpose(1, 2)
    v = att.v_proj(hidden).view(batch, 1, att.num_kv_heads, att.head_dim).transpose(1, 2)
    q2 = att.q_proj(hidden).view(batch, 1, att.num_heads, att.head_dim).transpose(1, 2)
    if not isinstance(att, SuperlinearAttention):
        return None, q2, k, v
    return att.q1_proj(hidden).view(batch, 1, att.num_heads, att.head_dim).transpose(1, 2), q2, k, v


def attention_rows(
    att: DenseAttention, hidden: torch.Tensor, caches: Sequence[KVCache], positions: Sequence[int]
) -> torch.Tensor:
    """Attention of one new token per row, `hidden` [B, 1, H], each at its own position; return [B, 1, H]."""
    batch = hidden.shape[0]
    q1, q2, k, v = project_rows(att, hidden)
    superlinear = q1 is not None
    views = [cache.write(pos, k[b : b + 1], v[b : b + 1])
             for b, (cache, pos) in enumerate(zip(caches, positions, strict=True))]
    if superlinear and supports(q2, caches[0].k):  # the Triton kernels: all rows in one batched decode
        where = torch.tensor(list(positions), dtype=torch.int64, device=hidden.device)
        out = triton_decode_rows(q1, q2, [c.k for c in caches], [c.v for c in caches], where, att.params)
        return att.o_proj(out.transpose(1, 2).reshape(batch, 1, -1))
    out = q2.new_empty(batch, att.num_heads, 1, att.head_dim)
    grouped = superlinear and hidden.device.type == "cpu"
    for rows in length_groups(positions) if grouped else [[b] for b in range(batch)]:
        if len(rows) > 1:
            out[rows] = _superlinear_padded(att, q1[rows], q2[rows], [views[b] for b in rows]).to(out.dtype)
            continue
        (b,) = rows
        keys, values = views[b]
        if superlinear:
            where = torch.arange(positions[b], positions[b] + 1, device=hidden.device)
            out[b : b + 1] = superlinear_attention(q1[b : b + 1], q2[b : b + 1], keys, values, where,
                                                   params=att.params, block_q=att.block_q)
        else:
            out[b : b + 1] = dense_causal_attention(q2[b : b + 1], keys, values, positions[b])
    return att.o_proj(out.transpose(1, 2).reshape(batch, 1, -1))


def length_groups(positions: Sequence[int], ratio: float = 1.5) -> list[list[int]]:
    """Rows grouped by similar cache length (longest <= ratio x shortest + 64), so padding wastes little."""
    order = sorted(range(len(positions)), key=lambda b: positions[b])
    groups: list[list[int]] = []
    for b in order:
        if groups and positions[b] + 1 <= ratio * (positions[groups[-1][0]] + 1) + 64:
            groups[-1].append(b)
        else:
            groups.append([b])
    return groups


def _superlinear_padded(att: SuperlinearAttention, q1: torch.Tensor, q2: torch.Tensor, views) -> torch.Tensor:
    """One Superlinear attention call for rows of different lengths: keys right-aligned, left-padded.

    The kernel's left-padding mask makes every span, window and search relative to each row's first key,
    so a row gives what it gives alone (checked against the per-row path in the tests).
    """
    lengths = [keys.shape[2] for keys, _ in views]
    total = max(lengths)
    heads, dim = views[0][0].shape[1], views[0][0].shape[3]
    keys = views[0][0].new_zeros(len(views), heads, total, dim)
    values = torch.zeros_like(keys)
    mask = torch.zeros(len(views), total, dtype=torch.bool, device=keys.device)
    for i, ((k, v), n) in enumerate(zip(views, lengths, strict=True)):
        keys[i, :, total - n :] = k[0]
        values[i, :, total - n :] = v[0]
        mask[i, total - n :] = True
    where = torch.tensor([total - 1], device=keys.device)
    return superlinear_attention(q1, q2, keys, values, where, mask, params=att.params, block_q=att.block_q)


def mamba_rows(m: Mamba2Mixer, hidden: torch.Tensor, caches: Sequence[MambaCache]) -> torch.Tensor:
    """One token per row through a Mamba-2 mixer, `hidden` [B, 1, H]; the caches update; return [B, 1, H].

    With the fused GPU ops the rows go through the mixer's own path one by one.
    """
    if fused_ops(hidden.device) is not None:
        return torch.cat([m(hidden[b : b + 1], cache) for b, cache in enumerate(caches)])
    batch = hidden.shape[0]
    z, xbc, dt = m.in_proj(hidden).split([m.inner, m.conv_dim, m.num_heads], dim=-1)
    full = torch.cat([torch.cat([c.conv for c in caches]), xbc.transpose(1, 2)], dim=-1)  # [B, C, w + 1]
    for b, cache in enumerate(caches):
        cache.conv.copy_(full[b : b + 1, :, 1:])
    xbc = F.silu(F.conv1d(full, m.conv1d.weight, m.conv1d.bias, groups=m.conv_dim))[:, :, -1]  # [B, C]
    groups_n = m.n_groups * m.state_size
    x, bmat, cmat = xbc.float().split([m.inner, groups_n, groups_n], dim=-1)
    x = x.reshape(batch, m.num_heads, m.head_dim)
    bmat, cmat = bmat.reshape(batch, m.n_groups, -1), cmat.reshape(batch, m.n_groups, -1)
    a = -torch.exp(m.A_log.float())
    ssm = torch.cat([c.ssm for c in caches])  # [B, nh, P, N]
    y, new_ssm = ssm_step_rows(x, m._dt(dt[:, 0]), a, bmat, cmat, ssm)
    for b, cache in enumerate(caches):
        cache.ssm.copy_(new_ssm[b : b + 1])
    y = y + x * m.D.float()[:, None]
    y = m.norm(y.reshape(batch, 1, m.inner), z)
    return m.out_proj(y.to(hidden.dtype))


def ssm_step_rows(
    x: torch.Tensor, dt: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, ssm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`ssm_step` for B rows: x [B, nh, P], dt [B, nh], a [nh], b and c [B, G, N], ssm [B, nh, P, N]; fp32.

    Returns (y [B, nh, P] without the D skip, new state [B, nh, P, N]).
    """
    heads_per_group = x.shape[1] // b.shape[1]
    b = b.repeat_interleave(heads_per_group, dim=1)  # [B, nh, N]
    c = c.repeat_interleave(heads_per_group, dim=1)
    decay = torch.exp(dt * a)[:, :, None, None]
    new_ssm = ssm * decay + (dt[:, :, None] * x)[:, :, :, None] * b[:, :, None, :]
    y = torch.einsum("bhpn,bhn->bhp", new_ssm, c)
    return y, new_ssm
