"""`spl snapshot import DIR` against a real server: snapshots laid out as the published server writes them.

The published snapshot is built from a real session of ours: its state is exported, re-laid out the way
the published server's `export_hybrid_mamba_attention_static_cache` stacks it (KV per attention layer,
Mamba conv/SSM states of all layers in one tensor each, a conv window of `conv_kernel` inputs, no token ids,
no logits) and written with torch.save beside the published manifest.json and transcript.json.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import falcon.testing
import jsonschema
import pytest
import requests
import torch

from superlinear.adapters import default_model_dir
from superlinear.adapters.hybrid.config import HybridConfig
from superlinear.frontends.cli.main import main
from superlinear.frontends.http import AppOptions, ServiceHolder, create_app
from superlinear.frontends.http.openapi import openapi_document
from superlinear.storage import FilesystemSnapshotStore

from .test_server_inprocess import fake_services

NO_THINK = {"enable_thinking": False}
HISTORY = [{"role": "user", "content": "Name three colours."},
           {"role": "assistant", "content": "Red, green and blue."},
           {"role": "user", "content": "And three fruits?"}]
NEXT = [{"role": "user", "content": "Now three animals."}]


@pytest.fixture
def spl(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("SPL_API_KEY", raising=False)

    def run(*args):
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        code = main([*args, "--url", server])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def documented(answer: dict, path: str, method: str) -> None:
    """Validate a 200 answer against the schema /openapi.json gives its route."""
    document = openapi_document()
    schema = document["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": document["components"]}).validate(answer)


def config() -> HybridConfig:
    return HybridConfig.from_dict(json.loads((default_model_dir() / "config.json").read_text()))


def greedy_turn(server, sid, messages, n=8):
    r = requests.post(f"{server}/v1/chat/completions", timeout=120, json={
        "session_id": sid, "messages": messages, "max_tokens": n, "temperature": 0,
        "chat_template_kwargs": NO_THINK, "logprobs": True})
    assert r.status_code == 200, r.text
    # Tokens and their log-probabilities: equal floats mean the same state, not just the same argmax.
    return [(t["token"], t["logprob"]) for t in r.json()["choices"][0]["logprobs"]["content"]]


def session_at_user_boundary(server, sid):
    """A session whose state holds exactly the rendering of HISTORY (a turn, then a rollback to 3 messages)."""
    assert requests.post(f"{server}/v1/sessions", json={"session_id": sid}, timeout=10).status_code in (200, 201)
    greedy_turn(server, sid, HISTORY, n=2)
    r = requests.post(f"{server}/v1/sessions/{sid}/rollback", json={"keep_messages": 3}, timeout=60)
    assert r.status_code == 200, r.text


def our_arrays(server, server_env, sid):
    snap = requests.post(f"{server}/v1/sessions/{sid}/save", json={}, timeout=60).json()["snapshot_id"]
    manifest, arrays = FilesystemSnapshotStore(server_env["SUPERLINEAR_SNAPSHOT_DIR"]).load(snap)
    requests.delete(f"{server}/v1/snapshots/{snap}", timeout=10)
    return manifest, {k: v.clone() for k, v in arrays.items()}


def published_cache(cfg: HybridConfig, arrays: dict) -> dict:
    """The dict the published server pickles into cache.pt, from our exported arrays."""
    pos = int(arrays["cursor"].item())
    attention = [i for i, k in enumerate(cfg.layer_kinds) if k == "*"]
    conv = torch.zeros(len(cfg.layer_kinds), 1, cfg.conv_dim, cfg.conv_kernel, dtype=arrays["layers.0.conv"].dtype)
    ssm = torch.zeros(len(cfg.layer_kinds), 1, cfg.mamba_num_heads, cfg.mamba_head_dim, cfg.ssm_state_size)
    for i, kind in enumerate(cfg.layer_kinds):
        if kind == "M":
            # The published window also holds the oldest input, which the next step never reads.
            conv[i, :, :, 0] = torch.randn(1, cfg.conv_dim)
            conv[i, :, :, 1:] = arrays[f"layers.{i}.conv"]
            ssm[i] = arrays[f"layers.{i}.ssm"]
    return {
        "cache_format": "hybrid_mamba_attention_static_v1",
        "cache_class": "transformers_modules.modeling.HybridMambaAttentionStaticCache",
        "max_seq_len": 4096, "current_pos": pos, "kv_layers": attention,
        "key_cache": {str(i): arrays[f"layers.{i}.k"] for i in attention},
        "value_cache": {str(i): arrays[f"layers.{i}.v"] for i in attention},
        "conv_states": conv, "ssm_states": ssm,
    }


def write_published(directory: Path, cache: dict, messages: list, snapshot_id: str, pos: int) -> Path:
    directory.mkdir(parents=True)
    torch.save(cache, directory / "cache.pt")
    (directory / "transcript.json").write_text(json.dumps({"messages": messages}))
    (directory / "manifest.json").write_text(json.dumps({
        "schema_version": 1, "snapshot_id": snapshot_id, "created_at": 1760000000,
        "compat": {"fingerprint": "f" * 64, "payload": {}},
        "session": {"max_seq_len": 4096, "current_pos": pos},
        "metadata": {"title": "from the published server", "description": "d", "tags": ["pub"]},
        "files": {"transcript": "transcript.json", "cache": "cache.pt"}}))
    return directory


def test_imported_published_snapshot_continues_exactly_as_the_original(server, server_env, spl, tmp_path):
    session_at_user_boundary(server, "imp-orig")
    manifest, arrays = our_arrays(server, server_env, "imp-orig")
    cache = published_cache(config(), arrays)
    sid = "0123456789abcdef0123456789abcdef"
    directory = write_published(tmp_path / sid, cache, HISTORY, sid, len(manifest.ledger))

    code, out, err = spl("snapshot", "import", str(directory), "--json")
    assert code == 0, err
    result = json.loads(out)
    documented(result, "/v1/snapshots/import", "post")
    assert result["snapshot_id"] == sid and result["tokens"] == len(manifest.ledger)
    info = requests.get(f"{server}/v1/snapshots/{sid}", timeout=10).json()
    documented(info, "/v1/snapshots/{snapshot_id}", "get")
    assert info["title"] == "from the published server" and info["tags"] == ["pub"]

    r = requests.post(f"{server}/v1/snapshots/{sid}/load", json={"session_id": "imp-copy"}, timeout=60)
    assert r.status_code == 200, r.text
    history = requests.get(f"{server}/v1/sessions/imp-copy/history", timeout=10).json()
    assert [m["content"] for m in history["messages"]] == [m["content"] for m in HISTORY]
    assert greedy_turn(server, "imp-copy", NEXT) == greedy_turn(server, "imp-orig", NEXT)

    code, _, err = spl("snapshot", "import", str(directory))
    assert code != 0 and "exists already" in err


def test_a_pickled_object_is_refused_and_nothing_is_written(server, server_env, spl, tmp_path):
    session_at_user_boundary(server, "imp-evil")
    manifest, arrays = our_arrays(server, server_env, "imp-evil")
    cache = published_cache(config(), arrays)
    marker = tmp_path / "ran"
    cache["hook"] = _Exploit(str(marker))
    sid = "1123456789abcdef0123456789abcdef"
    directory = write_published(tmp_path / sid, cache, HISTORY, sid, len(manifest.ledger))
    before = requests.get(f"{server}/v1/snapshots", timeout=10).json()["data"]

    r = requests.post(f"{server}/v1/snapshots/import", json={"path": str(directory)}, timeout=60)
    assert r.status_code == 422, r.text
    assert "weights_only" in r.json()["error"]["message"]
    assert not marker.exists()
    assert requests.get(f"{server}/v1/snapshots", timeout=10).json()["data"] == before
    code, _, err = spl("snapshot", "import", str(directory))
    assert code != 0 and "cache.pt holds something other than tensors" in err


def test_a_snapshot_of_another_shape_is_refused_naming_the_mismatch(server, server_env, tmp_path):
    session_at_user_boundary(server, "imp-shape")
    manifest, arrays = our_arrays(server, server_env, "imp-shape")
    cfg = config()
    cache = published_cache(cfg, arrays)
    layer = str(cache["kv_layers"][0])
    k = cache["key_cache"][layer]
    cache["key_cache"][layer] = torch.zeros(1, k.shape[1] * 2, k.shape[2], k.shape[3])
    directory = write_published(tmp_path / "shape", cache, HISTORY, "2" * 32, len(manifest.ledger))
    r = requests.post(f"{server}/v1/snapshots/import", json={"path": str(directory)}, timeout=60)
    assert r.status_code == 422, r.text
    assert f"key_cache['{layer}'] has shape" in r.json()["error"]["message"]

    cache = published_cache(cfg, arrays)
    cache["ssm_states"] = cache["ssm_states"][:, :, :, :, :-1].clone()
    directory = write_published(tmp_path / "ssm", cache, HISTORY, "3" * 32, len(manifest.ledger))
    r = requests.post(f"{server}/v1/snapshots/import", json={"path": str(directory)}, timeout=60)
    assert r.status_code == 422 and "ssm_states has shape" in r.json()["error"]["message"], r.text

    wrong = write_published(tmp_path / "count", published_cache(cfg, arrays), HISTORY[:1], "4" * 32,
                            len(manifest.ledger))
    r = requests.post(f"{server}/v1/snapshots/import", json={"path": str(wrong)}, timeout=60)
    assert r.status_code == 422 and "the cache holds" in r.json()["error"]["message"], r.text
    ids = {s["snapshot_id"] for s in requests.get(f"{server}/v1/snapshots", timeout=10).json()["data"]}
    assert not ids & {"2" * 32, "3" * 32, "4" * 32}


def test_import_wants_an_absolute_directory_path(server):
    r = requests.post(f"{server}/v1/snapshots/import", json={"path": "relative/dir"}, timeout=10)
    assert r.status_code == 400 and "absolute" in r.json()["error"]["message"]
    r = requests.post(f"{server}/v1/snapshots/import", json={"path": os.getcwd()}, timeout=10)
    assert r.status_code == 400 and "manifest.json" in r.json()["error"]["message"]


class _Exploit:
    """Unpickling this would create a file: what a malicious cache.pt could do."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def _app(secured: bool):
    services = fake_services()
    app = create_app(ServiceHolder(lambda: services, background=False),
                     AppOptions(load_plugins=False, api_key="k" if secured else None))
    return falcon.testing.TestClient(app), services


@pytest.mark.parametrize("secured", [False, True])
def test_import_is_for_loopback_clients_unless_an_api_key_guards_the_server(secured):
    client, services = _app(secured)
    headers = {"Authorization": "Bearer k"} if secured else {}
    try:
        body = {"path": "/nonexistent-dir"}
        far = client.simulate_post("/v1/snapshots/import", json=body, headers=headers, remote_addr="10.1.2.3")
        near = client.simulate_post("/v1/snapshots/import", json=body, headers=headers, remote_addr="127.0.0.1")
    finally:
        services.sessions.engine.stop()
    assert far.status_code == (400 if secured else 403), far.text
    assert set(far.json["error"]) == {"message", "type", "param", "code"}
    # Past the guard, the fake model cannot import published snapshots: a 400, never a file read.
    assert near.status_code == 400 and "cannot import" in near.json["error"]["message"]
