"""Train the embedded default model on the synthetic conversations of ``synthetic.py``.

The model is the tiny superlinear-exp hybrid of ``MODEL_CONFIG`` (Mamba-2, Superlinear attention, MoE and
MLP layers, about 3.4 M parameters). It trains through the package's own ``HybridLM`` in fp32, so the
attention is the exact, differentiable PyTorch reference: the span search's routing (Q1 and the keys'
scores at the selected anchors) is learned end to end through the gate.

Runs are bounded by wall time and resumable, so training fits the lent GPU's 10-minute commands:

    python training/train.py --out OUT --budget 480 --planned 1500            # first run
    python training/train.py --out OUT --resume OUT --budget 480 --planned 1500   # continue

``--planned`` is the total training time of all runs together; the learning rate follows a cosine over it.
``--init-from adapters/default_model`` starts from the shipped weights instead (fresh optimizer; use it
with ``--phase-lr``) when no checkpoint folder is at hand.
A checkpoint is a folder of ``model.pt``, ``optim_m.pt``, ``optim_v.pt`` and ``progress.json`` (each file
under 16 MiB so it can travel). ``export.py`` turns one into the package's model directory.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import synthetic  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

from superlinear.adapters.hybrid.attention import SuperlinearAttention  # noqa: E402
from superlinear.adapters.hybrid.config import HybridConfig  # noqa: E402
from superlinear.adapters.hybrid.mamba import Mamba2Mixer  # noqa: E402
from superlinear.adapters.hybrid.model import HybridLM  # noqa: E402
from superlinear.adapters.hybrid.moe import TopKRouter  # noqa: E402
from superlinear.adapters.hybrid.state import HybridState  # noqa: E402

REPO = HERE.parent
TOKENIZER = REPO / "adapters" / "default_model" / "tokenizer.json"
ENDOFTEXT_ID, IM_END_ID = 0, 1

MODEL_CONFIG = {
    "_name_or_path": "superlinear-tiny",
    "architectures": ["NemotronHForCausalLM"],
    "model_type": "superlinear-exp",
    "vocab_size": 1024,
    "hidden_size": 256,
    "hybrid_override_pattern": "M*MEM*M-",
    "num_hidden_layers": 8,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "attention_bias": False,
    "mamba_num_heads": 8,
    "mamba_head_dim": 32,
    "ssm_state_size": 32,
    "n_groups": 2,
    "conv_kernel": 4,
    "chunk_size": 64,
    "use_conv_bias": True,
    "use_bias": False,
    "mamba_proj_bias": False,
    "mamba_hidden_act": "silu",
    "time_step_limit": [0.0, float("inf")],
    "n_routed_experts": 8,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 256,
    "moe_shared_expert_intermediate_size": 256,
    "routed_scaling_factor": 2.5,
    "norm_topk_prob": True,
    "n_group": 1,
    "topk_group": 1,
    "intermediate_size": 768,
    "mlp_hidden_act": "relu2",
    "mlp_bias": False,
    "layer_norm_epsilon": 1e-5,
    "tie_word_embeddings": False,
    "max_position_embeddings": 1048576,
    "pad_token_id": ENDOFTEXT_ID,
    "eos_token_id": IM_END_ID,
    # A 255-token exact window; beyond it the span search picks 3 spans of about 4 * sqrt(t) tokens.
    "span_attention_sw_index": 15,
    "span_attention_num_spans": 3,
    "span_attention_backward_factor": 3.0,
    "span_attention_forward_factor": 1.0,
    "span_attention_search_power": 0.5,
    "span_attention_span_power": 0.5,
    "torch_dtype": "float32",
}


# ------------------------------------------------------------------------------------------------ model


def build_model(seed: int, device: str, config: dict | None = None) -> HybridLM:
    """A freshly initialised model of ``config`` (default ``MODEL_CONFIG``): small normal matrices, scaled
    residual outputs, Mamba-2 decay ranges."""
    cfg = HybridConfig.from_dict(config or MODEL_CONFIG)
    torch.manual_seed(seed)
    lm = HybridLM(cfg)
    residual_scale = 1.0 / math.sqrt(2 * len(cfg.layer_kinds))
    for name, p in lm.named_parameters():
        if name.endswith(("norm.weight", "norm_f.weight")):
            torch.nn.init.ones_(p)
        elif name.endswith("A_log"):
            p.data.copy_(torch.log(torch.empty_like(p).uniform_(1.0, 16.0)))
        elif name.endswith("dt_bias"):
            dt = torch.exp(torch.empty_like(p).uniform_(math.log(1e-3), math.log(1e-1)))
            p.data.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        elif name.endswith(".D"):
            torch.nn.init.ones_(p)
        elif name.endswith("e_score_correction_bias") or name.endswith(".bias"):
            torch.nn.init.zeros_(p)
        elif name.endswith("conv1d.weight"):
            torch.nn.init.normal_(p, std=0.2)
        else:
            std = 0.02
            if name.endswith(("out_proj.weight", "o_proj.weight", "down_proj.weight", "experts.down_proj")):
                std *= residual_scale
            torch.nn.init.normal_(p, std=std)
    return lm.to(device)


def tune_for_training(lm: HybridLM, block_q: int, mamba_chunk: int, attention: str = "reference") -> None:
    """Fewer, larger blocks for the attention reference and longer Mamba chunks: the same math in far fewer
    kernel launches, which is what bounds a model this small on a GPU. ``attention="triton"`` runs the
    differentiable Triton kernels instead of the reference (CUDA, bf16 inside the attention; elsewhere it
    falls back to the reference), which is what reaches packs of 64K to 256K tokens."""
    for module in lm.modules():
        if isinstance(module, SuperlinearAttention):
            module.block_q = block_q
            module.triton_training = attention == "triton"
        elif isinstance(module, Mamba2Mixer):
            module.chunk_size = mamba_chunk


def forward_logits(lm: HybridLM, ids: torch.Tensor) -> torch.Tensor:
    """Logits [L, V] of a whole sequence ``ids`` [L] from an empty state (autograd flows through it)."""
    state = HybridState.empty(lm.config, ids.numel(), device=lm.device, dtype=lm.dtype)
    return lm(ids[None], state, last_only=False)


# ------------------------------------------------------------------------------------------------- data


class Packer:
    """Endless packs of ``seq_len`` tokens: whole conversations separated by <|endoftext|>, with a mask of
    the positions whose next token is trained (the assistant replies)."""

    def __init__(self, tokenizer: Tokenizer, seq_len: int, seed: int, mix: tuple[float, float] = synthetic.DEFAULT_MIX,
                 documents: list[str] | None = None, retrieval: float = 0.0):
        self.tok = tokenizer
        self.seq_len = seq_len
        self.rng = random.Random(seed)
        self.mix = mix
        # A user's own texts become the long-document conversations' haystacks (``--documents``).
        self.filler = synthetic.text_filler(documents) if documents else synthetic.filler_document
        self.retrieval = retrieval

    def encode(self, conversation: synthetic.Conversation) -> tuple[list[int], list[bool]]:
        ids: list[int] = []
        train: list[bool] = []
        for seg in conversation:
            piece = self.tok.encode(seg.text, add_special_tokens=False).ids
            ids += piece
            train += [seg.train] * len(piece)
        return ids, train

    def pack(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (ids [seq_len + 1], loss mask [seq_len]) where mask[i] trains predicting ids[i + 1]."""
        ids, train = [ENDOFTEXT_ID], [False]
        while len(ids) < self.seq_len + 1:
            room = self.seq_len + 1 - len(ids)
            conv = synthetic.conversation(self.rng, room, self.mix, filler=self.filler, retrieval_share=self.retrieval)
            conv_ids, conv_train = self.encode(conv)
            if len(conv_ids) > room and len(ids) > 1:
                if room < 400:
                    break
                continue
            ids += conv_ids + [ENDOFTEXT_ID]
            train += conv_train + [False]
        pad = self.seq_len + 1 - len(ids)
        ids, train = (ids + [ENDOFTEXT_ID] * pad)[: self.seq_len + 1], (train + [False] * pad)[: self.seq_len + 1]
        return torch.tensor(ids), torch.tensor(train[1:])


class PackStream(torch.utils.data.IterableDataset):
    """Packs from several worker processes, each with its own seed."""

    def __init__(self, seq_len: int, seed: int, mix: tuple[float, float], documents: list[str] | None = None,
                 retrieval: float = 0.0):
        self.seq_len, self.seed, self.mix, self.documents, self.retrieval = seq_len, seed, mix, documents, retrieval

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = info.id if info else 0
        seed = self.seed * 1000 + worker
        packer = Packer(Tokenizer.from_file(str(TOKENIZER)), self.seq_len, seed, self.mix, self.documents,
                        self.retrieval)
        while True:
            yield packer.pack()


# --------------------------------------------------------------------------------------------- training


def param_groups(lm: HybridLM, weight_decay: float):
    decay, keep = [], []
    for name, p in lm.named_parameters():
        if name.endswith("e_score_correction_bias"):
            continue  # moved by the load balancer, not by gradients
        (decay if p.ndim >= 2 and "embeddings" not in name else keep).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


class ExpertBalancer:
    """Auxiliary-loss-free MoE balancing: nudge each router's selection bias towards even expert loads."""

    def __init__(self, lm: HybridLM, rate: float = 1e-3):
        self.rate = rate
        self.routers = [m for m in lm.modules() if isinstance(m, TopKRouter)]
        self.counts = {id(r): None for r in self.routers}
        for router in self.routers:
            router.register_forward_hook(self._hook)

    def _hook(self, router, _inputs, output):
        if torch.is_grad_enabled():
            ids = output[0]
            count = torch.bincount(ids.reshape(-1), minlength=router.weight.shape[0]).float()
            self.counts[id(router)] = count

    @torch.no_grad()
    def step(self) -> None:
        for router in self.routers:
            count = self.counts[id(router)]
            if count is not None:
                router.e_score_correction_bias += self.rate * torch.sign(count.mean() - count)


def learning_rate(progress: float, peak: float, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` of the run, then cosine down to a tenth of the peak."""
    if progress < warmup:
        return peak * progress / warmup
    done = min(1.0, (progress - warmup) / (1 - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done)))


def run_learning_rate(args: argparse.Namespace, trained_before: float, elapsed: float) -> float:
    """The rate now: the cosine over ``--planned`` seconds of all runs, or with ``--phase-lr`` a fine-tuning
    phase's own cosine over this run's budget, from ``--phase-lr`` to a tenth of it."""
    if args.phase_lr:
        return learning_rate(min(1.0, elapsed / args.budget), args.phase_lr, 0.0)
    return learning_rate(min(1.0, (trained_before + elapsed) / args.planned), args.lr, args.warmup)


def train_step(lm: HybridLM, opt: torch.optim.AdamW, balancer: ExpertBalancer, ids, mask) -> float:
    """One optimizer step on a pack (ids [L + 1], mask [L]); returns the loss."""
    logits = forward_logits(lm, ids[:-1])
    loss = F.cross_entropy(logits[mask], ids[1:][mask])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
    opt.step()
    balancer.step()
    return loss.item()


def model_config(folder: str | Path | None) -> dict:
    """The model config of a checkpoint or model directory (its ``config.json``), else ``MODEL_CONFIG``.

    A model directory of the same family (superlinear-exp hybrid, another size) trains as its config says.
    """
    path = Path(folder) / "config.json" if folder else None
    if path is None or not path.is_file():
        return MODEL_CONFIG
    return {**json.loads(path.read_text()), "torch_dtype": "float32"}


def save_checkpoint(out: Path, lm: HybridLM, opt: torch.optim.AdamW, progress: dict, config: dict | None = None) -> None:
    """Write the model, its config, the optimizer's two moments (by parameter index) and the progress record."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config or MODEL_CONFIG, indent=2) + "\n")
    torch.save({k: v.detach().cpu() for k, v in lm.state_dict().items()}, out / "model.pt")
    params = [p for g in opt.param_groups for p in g["params"]]
    for key, file in (("exp_avg", "optim_m.pt"), ("exp_avg_sq", "optim_v.pt")):
        torch.save([opt.state[p][key].cpu() if p in opt.state else None for p in params], out / file)
    steps = [int(opt.state[p]["step"]) if p in opt.state else 0 for p in params]
    (out / "progress.json").write_text(json.dumps({**progress, "adam_steps": steps}, indent=1) + "\n")


def load_checkpoint(src: Path, lm: HybridLM, opt: torch.optim.AdamW) -> dict:
    lm.load_state_dict(torch.load(src / "model.pt", map_location=lm.device))
    progress = json.loads((src / "progress.json").read_text())
    params = [p for g in opt.param_groups for p in g["params"]]
    moments = [torch.load(src / f, map_location=lm.device) for f in ("optim_m.pt", "optim_v.pt")]
    for p, m, v, step in zip(params, *moments, progress.pop("adam_steps"), strict=True):
        if m is not None:
            opt.state[p] = {"step": torch.tensor(float(step)), "exp_avg": m, "exp_avg_sq": v}
    return progress


def train(args: argparse.Namespace) -> Path:
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    config = model_config(args.resume or args.init_from)
    lm = build_model(args.seed, device, config)
    opt = torch.optim.AdamW(param_groups(lm, 0.1), lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    progress = {"step": 0, "train_seconds": 0.0, "tokens": 0, "runs": 0, "log": []}
    if args.resume:
        progress = load_checkpoint(Path(args.resume), lm, opt)
    elif args.init_from:
        # An exported model directory (the shipped weights): fp32 copies of its tensors, fresh optimizer.
        from superlinear.adapters import TorchModel

        lm.load_state_dict(TorchModel.from_dir(args.init_from, device=device).lm.state_dict())
    tune_for_training(lm, args.block_q, args.mamba_chunk, args.attention)
    balancer = ExpertBalancer(lm)
    n_params = sum(p.numel() for p in lm.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters on {device}; resuming at step {progress['step']}", flush=True)
    seed = args.seed + 7919 * (progress["runs"] + 1)
    stream = PackStream(args.seq_len, seed, args.mix, read_documents(args.documents), args.retrieval)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=args.workers,
                                         prefetch_factor=4 if args.workers else None)
    start = time.monotonic()
    window_loss, window_tokens = 0.0, 0
    lm.train()
    for ids, mask in loader:
        elapsed = time.monotonic() - start
        if elapsed > args.budget or (args.max_steps and progress["step"] >= args.max_steps):
            break
        lr = run_learning_rate(args, progress["train_seconds"], elapsed)
        for group in opt.param_groups:
            group["lr"] = lr
        ids, mask = ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)
        window_loss += train_step(lm, opt, balancer, ids, mask)
        progress["step"] += 1
        progress["tokens"] += ids.numel() - 1
        window_tokens += 1
        if progress["step"] % args.log_every == 0:
            rate = progress["tokens"] / max(1e-9, progress["train_seconds"] + time.monotonic() - start)
            line = (f"step {progress['step']} loss {window_loss / window_tokens:.4f} lr {lr:.2e} "
                    f"elapsed {time.monotonic() - start:.0f}s ({rate:.0f} tok/s overall)")
            print(line, flush=True)
            progress["log"].append(line)
            window_loss, window_tokens = 0.0, 0
    progress["train_seconds"] += time.monotonic() - start
    progress["runs"] += 1
    out = Path(args.out)
    save_checkpoint(out, lm, opt, progress, config)
    print(f"saved {out} at step {progress['step']} after {progress['train_seconds']:.0f}s of training", flush=True)
    if device.startswith("cuda"):
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB", flush=True)
    return out


def read_documents(path: str | None) -> list[str] | None:
    """The texts of ``--documents``: a text file, or every ``.txt``/``.md`` file under a folder (UTF-8)."""
    if not path:
        return None
    root = Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix in (".txt", ".md"))
    texts = [f.read_text(encoding="utf-8", errors="replace") for f in files]
    if not any(t.strip() for t in texts):
        raise SystemExit(f"--documents {path}: no non-empty .txt or .md file found")
    print(f"documents: {len(files)} files, {sum(map(len, texts)) / 1e6:.1f} M characters", flush=True)
    return texts


def _mix(text: str) -> tuple[float, float]:
    chat, short = (float(x) for x in text.split(","))
    if chat < 0 or short < 0 or chat + short > 1:
        raise argparse.ArgumentTypeError(f"--mix {text!r}: two shares >= 0 summing to at most 1")
    return chat, short


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="checkpoint folder to write")
    parser.add_argument("--resume", help="checkpoint folder to continue from")
    parser.add_argument("--init-from", help="start from an exported model directory (e.g. adapters/default_model)"
                        " with a fresh optimizer")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds of training in this run")
    parser.add_argument("--planned", type=float, default=1500.0, help="seconds of training over all runs")
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps in all (0: no cap)")
    parser.add_argument("--seq-len", type=int, default=16384, help="tokens per packed sequence (one per step)")
    parser.add_argument("--mix", type=_mix, default=synthetic.DEFAULT_MIX,
                        help="shares of chat and of short-document conversations, e.g. 0.55,0.15 (the rest: long"
                        " documents)")
    parser.add_argument("--documents", help="a text file or folder of .txt/.md files: your own texts become the"
                        " haystacks of the long-document conversations (needles and questions stay synthetic)")
    parser.add_argument("--retrieval", type=float, default=0.0,
                        help="share of document conversations in the varied retrieval forms of retrieval.py (pasted"
                        " documents, other facts and phrasings, several needles); 0 keeps the original data")
    parser.add_argument("--block-q", type=int, default=4096, help="attention queries per reference block")
    parser.add_argument("--attention", choices=("reference", "triton"), default="reference",
                        help="attention kernels under autograd: the PyTorch reference (exact, fp32; up to ~32K"
                        " tokens) or the Triton forward/backward (CUDA, bf16; long packs)")
    parser.add_argument("--mamba-chunk", type=int, default=256, help="Mamba-2 scan chunk while training")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--phase-lr", type=float, default=0.0,
                        help="fine-tune: cosine from this rate over this run's budget instead of --planned")
    parser.add_argument("--warmup", type=float, default=0.03, help="fraction of --planned spent warming up")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--device")
    train(parser.parse_args(argv))


if __name__ == "__main__":
    main()
