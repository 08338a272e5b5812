"""Key and value tiles read on demand: a decode step copies only the tiles its window and spans touch.

``span.reference.tile_keys_values`` casts and copies every key of the call into tiles up front, which is
right for a prefill block (most keys are read) but makes one decode step copy the whole local cache.
``lazy_tiles`` gives ``span.reference.interval_attention`` the same tiles (same flat numbering, same
compute dtype) gathered from the cache only when indexed.
"""

import torch

from ..span.reference import TILE, TiledKV, compute_dtype


class LazyTiles:
    """Tiles of the flat keys (or values) of K [B, HKV, L, D]: ``tiles[ids]`` gathers [G, TILE, D].

    Flat key ``s * L + i`` is position ``i`` of sequence ``s = b * HKV + g``, as in ``TiledKV``; indices past
    the last key read the last key (never inside an interval, so masked out by the caller).
    """

    def __init__(self, x: torch.Tensor, tile: int = TILE):
        batch, heads, length, dim = x.shape
        self.x, self.tile, self.length, self.heads = x, tile, length, heads
        self.total = batch * heads * length
        self.dtype = compute_dtype(x.dtype)
        self.shape = ((self.total + tile - 1) // tile, tile, dim)

    def __getitem__(self, tiles: torch.Tensor) -> torch.Tensor:
        flat = tiles[:, None] * self.tile + torch.arange(self.tile, device=tiles.device)
        flat = flat.clamp_max(max(self.total - 1, 0))
        sequence, position = flat // self.length, flat % self.length
        return self.x[sequence // self.heads, sequence % self.heads, position].to(self.dtype)


def lazy_tiles(K: torch.Tensor, V: torch.Tensor) -> TiledKV:
    """A ``TiledKV`` over K, V [B, HKV, L, D] (L > 0) whose tiles are gathered when read."""
    return TiledKV(LazyTiles(K), LazyTiles(V), K.shape[2], K.shape[1])
