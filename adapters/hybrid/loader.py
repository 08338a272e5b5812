"""Load hybrid-model weights from an HF directory through a declarative table of name rules.

Shards are opened one at a time with safetensors' memory-mapped `safe_open`; every tensor is checked
against the shape the config implies before its data is read. Problems are gathered and reported together.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import struct
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import attrs
import torch
from safetensors import safe_open

from .config import HybridConfig
from .model import HybridLM

__all__ = [
    "CheckpointError",
    "Collector",
    "LoadReport",
    "NAME_PREFIXES",
    "DEFAULT_Q1_ALIASES",
    "load_model",
    "name_rules",
    "param_dtype",
    "shard_files",
    "weights_fingerprint",
]

log = logging.getLogger(__name__)

# Candidate on-disk names of superlinear-exp's search-query (Q1) projection; its real name is unconfirmed.
DEFAULT_Q1_ALIASES = ("q1_proj", "q_search_proj", "search_q_proj", "q_proj_search")
# Prefixes that on-disk tensor names may carry before the model's own names.
NAME_PREFIXES = ("backbone.", "model.")
# Small or precision-critical tensors stay fp32 whatever dtype the matmul weights get.
_FP32_SUFFIXES = (
    "norm.weight",
    "norm_f.weight",
    "gate.weight",
    "e_score_correction_bias",
    "A_log",
    "dt_bias",
    ".D",
)


def param_dtype(name: str, dtype: torch.dtype) -> torch.dtype:
    """The dtype a parameter is held in: fp32 for router, A_log, dt_bias, D and norms, else `dtype`."""
    return torch.float32 if name.endswith(_FP32_SUFFIXES) else dtype


class CheckpointError(ValueError):
    """The checkpoint does not match the config: missing, unexpected, misshapen or ambiguous tensors."""


@attrs.frozen
class LoadReport:
    """What a load did: tensors mapped, ignored, their dtypes and bytes, the Q1 names chosen."""

    mapped: int
    ignored: int
    dtypes: dict[str, int]
    nbytes: int
    q1_sources: dict[int, str]
    shards: int


@attrs.frozen
class _Rule:
    """One row of the name table: an on-disk pattern (after the prefix) and what it becomes."""

    pattern: re.Pattern[str]
    action: str  # "ignore", "expert" (one expert of a stacked tensor), "q1" (search query), "direct"
    target: str  # internal name template, formatted with the match groups


def name_rules(q1_aliases: Sequence[str]) -> tuple[_Rule, ...]:
    """The rule table that maps on-disk tensor names to the model's (the sharded loader uses it too)."""
    aliases = "|".join(re.escape(a) for a in q1_aliases) or r"(?!)"
    table = (
        (r"mtp\..*", "ignore", ""),
        (
            r"layers\.(\d+)\.mixer\.experts\.(\d+)\.(up|down)_proj\.weight",
            "expert",
            "layers.{0}.mixer.experts.{2}_proj",
        ),
        (
            r"layers\.(\d+)\.mixer\.experts\.(up|down)_proj(?:\.weight)?",
            "direct",
            "layers.{0}.mixer.experts.{1}_proj",
        ),
        (rf"layers\.(\d+)\.mixer\.(?:{aliases})\.(weight|bias)", "q1", "layers.{0}.mixer.q1_proj.{1}"),
        (r"(.+)", "direct", "{0}"),
    )
    return tuple(_Rule(re.compile(p), action, target) for p, action, target in table)


def shard_files(model_dir: str | Path) -> list[Path]:
    """List the safetensors files of a checkpoint: the index's shards, or the single `model.safetensors`."""
    model_dir = Path(model_dir)
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{index} has no 'weight_map'")
        names = sorted(set(weight_map.values()))
        missing = [n for n in names if not (model_dir / n).is_file()]
        if missing:
            raise CheckpointError(f"{index} names shard files that don't exist: {missing}")
        return [model_dir / n for n in names]
    single = model_dir / "model.safetensors"
    if single.is_file():
        return [single]
    raise CheckpointError(f"no model.safetensors or model.safetensors.index.json in {model_dir}")


def weights_fingerprint(model_dir: str | Path) -> str:
    """Hash the weights' identity: the index (if any) and each shard's header (names, shapes, offsets)."""
    digest = hashlib.sha256()
    index = Path(model_dir) / "model.safetensors.index.json"
    if index.is_file():
        digest.update(index.read_bytes())
    for shard in shard_files(model_dir):
        with open(shard, "rb") as f:
            head = f.read(8)
            (size,) = struct.unpack("<Q", head)
            digest.update(head + f.read(size))
    return digest.hexdigest()


def load_model(
    model_dir: str | Path,
    cfg: HybridConfig,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    q1_aliases: Sequence[str] = DEFAULT_Q1_ALIASES,
) -> tuple[HybridLM, LoadReport]:
    """Build the model for `cfg` and fill it from the checkpoint in `model_dir`; raise CheckpointError."""
    with torch.device("meta"):
        model = HybridLM(cfg)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    collector = Collector(cfg, expected, dtype, torch.device(device), name_rules(q1_aliases))
    shards = shard_files(model_dir)
    for shard in shards:
        with safe_open(str(shard), framework="pt", device="cpu") as handle:
            for key in handle.keys():
                collector.add(key, handle)
    tensors = collector.finish(q1_aliases)
    model.load_state_dict(tensors, strict=True, assign=True)
    model.eval().requires_grad_(False)
    report = _report(tensors, collector, len(shards))
    log.info(
        "loaded %s: %d tensors mapped, %d ignored, %s, %.1f MB, Q1 from %s",
        model_dir,
        report.mapped,
        report.ignored,
        report.dtypes,
        report.nbytes / 1e6,
        report.q1_sources or "-",
    )
    return model, report


def _report(tensors: dict[str, torch.Tensor], collector: Collector, shards: int) -> LoadReport:
    dtypes = Counter(str(t.dtype).removeprefix("torch.") for t in tensors.values())
    return LoadReport(
        mapped=collector.mapped,
        ignored=collector.ignored,
        dtypes=dict(dtypes),
        nbytes=sum(t.numel() * t.element_size() for t in tensors.values()),
        q1_sources={layer: src for layer, (src, _) in collector.q1_chosen.items()},
        shards=shards,
    )


@attrs.define(eq=False)
class Collector:
    """Gathers tensors shard by shard and records every mismatch; `finish` raises them all at once."""

    cfg: HybridConfig
    expected: dict[str, tuple[int, ...]]
    dtype: torch.dtype
    device: torch.device
    rules: tuple[_Rule, ...]
    tensors: dict[str, torch.Tensor] = attrs.field(factory=dict)
    experts_seen: dict[str, set[int]] = attrs.field(factory=dict)
    q1_found: dict[int, list[tuple[str, str, torch.Tensor]]] = attrs.field(factory=dict)
    q1_chosen: dict[int, tuple[str, torch.Tensor]] = attrs.field(factory=dict)
    problems: list[str] = attrs.field(factory=list)
    unexpected: list[tuple[str, tuple[int, ...]]] = attrs.field(factory=list)
    mapped: int = 0
    ignored: int = 0

    def add(self, key: str, handle) -> None:
        """Map one on-disk tensor `key` of an open shard `handle`."""
        name = next((key[len(p) :] for p in NAME_PREFIXES if key.startswith(p)), key)
        for rule in self.rules:
            match = rule.pattern.fullmatch(name)
            if match:
                break
        target = rule.target.format(*match.groups()) if match.groups() else name
        shape = tuple(handle.get_slice(key).get_shape())
        if rule.action == "ignore":
            self.ignored += 1
        elif rule.action == "expert":
            self._add_expert(key, target, int(match.group(2)), shape, handle)
        elif rule.action == "q1" and self._is_superlinear_attention(int(match.group(1))):
            self.q1_found.setdefault(int(match.group(1)), []).append((key, target, handle.get_tensor(key)))
        elif target in self.expected and target not in self.tensors:
            self._add_direct(key, target, shape, handle)
        else:
            self.unexpected.append((key, shape))

    def _is_superlinear_attention(self, layer: int) -> bool:
        kinds = self.cfg.layer_kinds
        return self.cfg.is_superlinear and layer < len(kinds) and kinds[layer] == "*"

    def _add_direct(self, key: str, target: str, shape: tuple[int, ...], handle) -> None:
        if shape != self.expected[target]:
            self.problems.append(f"tensor {key!r} has shape {shape}, expected {self.expected[target]}")
            return
        self.tensors[target] = self._cast(target, handle.get_tensor(key))
        self.mapped += 1

    def _add_expert(self, key: str, target: str, expert: int, shape: tuple[int, ...], handle) -> None:
        full = self.expected.get(target)
        if full is None or expert >= full[0]:
            self.unexpected.append((key, shape))
            return
        if shape != full[1:]:
            self.problems.append(f"tensor {key!r} has shape {shape}, expected {full[1:]}")
            return
        if target not in self.tensors:
            self.tensors[target] = torch.empty(full, dtype=self._dtype_for(target), device=self.device)
            self.experts_seen[target] = set()
        self.tensors[target][expert].copy_(handle.get_tensor(key))
        self.experts_seen[target].add(expert)
        self.mapped += 1

    def _dtype_for(self, target: str) -> torch.dtype:
        return param_dtype(target, self.dtype)

    def _cast(self, target: str, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(device=self.device, dtype=self._dtype_for(target)).contiguous()

    def finish(self, q1_aliases: Sequence[str]) -> dict[str, torch.Tensor]:
        """Resolve Q1, check completeness, return the internal-name -> tensor map; raise on any problem."""
        self._resolve_q1(q1_aliases)
        for target, seen in self.experts_seen.items():
            absent = sorted(set(range(self.expected[target][0])) - seen)
            if absent:
                self.problems.append(f"experts {absent} missing for {target!r}")
        missing = sorted(set(self.expected) - set(self.tensors))
        problems = [f"missing tensor {name!r} (shape {self.expected[name]})" for name in missing]
        problems += [f"unexpected tensor {key!r} (shape {shape})" for key, shape in self.unexpected]
        problems += self.problems
        if problems:
            raise CheckpointError("checkpoint does not match the config:\n  " + "\n  ".join(problems))
        return self.tensors

    def _resolve_q1(self, q1_aliases: Sequence[str]) -> None:
        """Pick each Superlinear layer's search-query weight among the alias names, validated by shape."""
        for layer, found in sorted(self.q1_found.items()):
            weights = [f for f in found if f[1].endswith(".weight")]
            if len(weights) > 1:
                names = [key for key, _, _ in weights]
                self.problems.append(f"ambiguous search-query (Q1) weight in layer {layer}: {names}")
                continue
            for key, target, tensor in found:
                if len(weights) == 1 and target.endswith(".weight"):
                    self.q1_chosen[layer] = (key, tensor)
                self._add_direct(key, target, tuple(tensor.shape), _Loaded(tensor))
        for layer in range(self.cfg.num_layers):
            if self._is_superlinear_attention(layer) and layer not in self.q1_found:
                self.problems.append(self._q1_missing_message(layer, q1_aliases))

    def _q1_missing_message(self, layer: int, q1_aliases: Sequence[str]) -> str:
        shape = self.expected[f"layers.{layer}.mixer.q1_proj.weight"]
        hints = [k for k, s in self.unexpected if f"layers.{layer}.mixer." in k and s == shape]
        hint = f"; tensors of that shape here: {hints} (add the name to q1_aliases)" if hints else ""
        return (
            f"no search-query (Q1) weight for layer {layer}: looked for "
            f"mixer.{{{','.join(q1_aliases)}}}.weight of shape {shape}{hint}"
        )


@attrs.frozen
class _Loaded:
    """A tensor already read, behind the two calls `_add_direct` makes on a shard handle."""

    tensor: torch.Tensor

    def get_tensor(self, key: str) -> torch.Tensor:
        return self.tensor
