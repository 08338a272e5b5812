"""Fine-tuning on one's own documents: haystacks cut from the user's texts, a model directory's own config."""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "training"))
import export  # noqa: E402
import synthetic  # noqa: E402
import train  # noqa: E402

TEXTS = [
    " ".join(f"Report {i} line {j} says the harbour {word} at dawn." for j in range(200))
    for i, word in enumerate(("opened", "flooded", "closed"))
]


def test_the_filler_cuts_pieces_of_the_users_texts():
    rng = random.Random(random.SystemRandom().randrange(2**31))
    filler = synthetic.text_filler(TEXTS)
    for _ in range(50):
        n = rng.randint(3, 40)
        piece = filler(rng, n)
        assert any(piece in text for text in TEXTS)
        assert 0 < len(piece) <= n * 60
    assert synthetic.text_filler(["short text."])(rng, 10) == "short text."
    with pytest.raises(ValueError, match="non-empty"):
        synthetic.text_filler(["  "])


def test_a_docs_conversation_hides_its_needle_in_the_users_text_and_answers_it():
    rng = random.Random(random.SystemRandom().randrange(2**31))
    for _ in range(10):
        conv = synthetic.docs_conversation(rng, rng.randint(2000, 6000), filler=synthetic.text_filler(TEXTS))
        text = synthetic.all_text(conv)
        assert "Report " in text and "Notes on" not in text  # user text, not the synthetic filler
        # Every answer quotes a needle that was hidden in the haystack (or says it found nothing).
        hidden = set(re.findall(r"(?:magic number|secret password) (?:for|of) \w+ is \w+\.", text))
        for reply in (s.text for s in conv if s.train and s.text != "OK<|im_end|>"):
            answer = reply.split("</think>")[-1]
            assert "could not find" in answer or any(h in answer for h in hidden), answer


def test_a_run_on_a_folder_of_documents_writes_its_config_and_exports_it(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, text in enumerate(TEXTS):
        (docs / f"r{i}.txt").write_text(text)
    (docs / "skip.bin").write_bytes(b"\x00\x01")
    common = ["--seq-len", "512", "--workers", "0", "--device", "cpu", "--max-steps", "1", "--mix", "0,0"]
    train.main(["--out", str(tmp_path / "a"), "--documents", str(docs), *common])
    written = json.loads((tmp_path / "a" / "config.json").read_text())
    assert written == json.loads(json.dumps(train.MODEL_CONFIG))
    # A model directory of the same family with another shape: training follows its config.json.
    other = {**train.MODEL_CONFIG, "hidden_size": 128, "intermediate_size": 384}
    (tmp_path / "a" / "config.json").write_text(json.dumps(other))
    lm = train.build_model(3, "cpu", train.model_config(tmp_path / "a"))
    torch.save(lm.state_dict(), tmp_path / "a" / "model.pt")
    export.main([str(tmp_path / "a"), "--out", str(tmp_path / "model"), "--dtype", "float32"])
    assert json.loads((tmp_path / "model" / "config.json").read_text())["hidden_size"] == 128
    with pytest.raises(SystemExit, match="no non-empty"):
        train.read_documents(str(tmp_path / "model"))
