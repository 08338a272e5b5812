"""The training script: packs train only replies, checkpoints resume exactly, exports load in the server."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer

from superlinear.adapters import TorchModel, default_model_dir

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "training"))
import export  # noqa: E402
import train  # noqa: E402


def test_a_pack_is_full_length_and_trains_exactly_the_reply_tokens():
    tok = Tokenizer.from_file(str(train.TOKENIZER))
    ids, mask = train.Packer(tok, 1024, seed=4).pack()
    assert ids.shape == (1025,) and mask.shape == (1024,) and mask.any()
    targets = ids[1:][mask].tolist()
    text = tok.decode(targets, skip_special_tokens=False)
    # Trained targets are reply text: they end turns but never open one.
    assert "<|im_start|>" not in text and "<|im_end|>" in text
    assert int(mask.sum()) < 1024 // 2


def test_a_run_resumes_from_its_checkpoint_with_the_optimizer_state(tmp_path):
    common = ["--seq-len", "256", "--workers", "0", "--device", "cpu", "--log-every", "1", "--planned", "100"]
    train.main(["--out", str(tmp_path / "a"), "--max-steps", "2", *common])
    first = json.loads((tmp_path / "a" / "progress.json").read_text())
    assert first["step"] == 2 and first["runs"] == 1 and len(first["log"]) == 2
    train.main(["--out", str(tmp_path / "b"), "--resume", str(tmp_path / "a"), "--max-steps", "3", *common])
    second = json.loads((tmp_path / "b" / "progress.json").read_text())
    assert second["step"] == 3 and second["runs"] == 2 and second["tokens"] == 3 * 256
    assert all(s == 3 for s in second["adam_steps"] if s)
    before = torch.load(tmp_path / "a" / "model.pt")
    after = torch.load(tmp_path / "b" / "model.pt")
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_an_exported_checkpoint_loads_in_the_server_adapter_with_the_same_logits(tmp_path):
    lm = train.build_model(7, "cpu")
    (tmp_path / "ckpt").mkdir()
    torch.save(lm.state_dict(), tmp_path / "ckpt" / "model.pt")
    out = tmp_path / "model"
    export.main([str(tmp_path / "ckpt"), "--out", str(out), "--dtype", "float32"])
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(default_model_dir() / name, out / name)
    model = TorchModel.from_dir(out)
    ids = torch.randint(5, 1024, (300,))
    with torch.no_grad():
        expected = train.forward_logits(lm.eval(), ids)[-1]
    state = model.new_state(400)
    model.append(state, ids.tolist())
    torch.testing.assert_close(state.logits, expected, rtol=1e-4, atol=1e-4)
    assert json.loads((out / "generation_config.json").read_text())["do_sample"] is False


def test_a_run_can_start_from_the_shipped_weights(tmp_path):
    train.main(["--out", str(tmp_path / "c"), "--init-from", str(default_model_dir()), "--max-steps", "1",
                "--seq-len", "256", "--workers", "0", "--device", "cpu", "--phase-lr", "1e-9", "--budget", "600"])
    shipped = TorchModel.from_dir(default_model_dir()).lm.state_dict()
    trained = torch.load(tmp_path / "c" / "model.pt")
    # One step at a learning rate of 1e-9 moves nothing visibly: the run started from the shipped tensors.
    # Only the MoE selection biases move, by the load balancer's fixed step.
    for name, tensor in shipped.items():
        step = 1e-3 + 1e-6 if name.endswith("e_score_correction_bias") else 1e-6
        torch.testing.assert_close(trained[name], tensor, rtol=0, atol=step)
