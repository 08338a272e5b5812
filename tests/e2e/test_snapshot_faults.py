"""A damaged snapshot on disk is a clear 4xx on a live server, which keeps serving."""

from pathlib import Path

import pytest
import requests


def _saved(server: str, sid: str) -> str:
    requests.post(f"{server}/v1/sessions", json={"session_id": sid}, timeout=10)
    requests.post(f"{server}/v1/chat/completions", timeout=60, json={
        "messages": [{"role": "user", "content": "Keep this."}], "session_id": sid, "max_tokens": 4,
        "temperature": 0})
    return requests.post(f"{server}/v1/sessions/{sid}/save", json={}, timeout=30).json()["snapshot_id"]


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


@pytest.mark.parametrize("damage", [_flip_byte, _truncate], ids=["flipped-byte", "truncated"])
def test_a_damaged_snapshot_is_refused_and_the_server_keeps_serving(server, server_env, damage):
    name = damage.__name__.strip("_")
    snap = _saved(server, f"fault-{name}")
    damage(Path(server_env["SUPERLINEAR_SNAPSHOT_DIR"]) / snap / "state.safetensors")
    resp = requests.post(f"{server}/v1/snapshots/{snap}/load", json={"session_id": f"fault-{name}-copy"}, timeout=30)
    assert 400 <= resp.status_code < 500
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and snap in error["message"]
    assert requests.get(f"{server}/v1/sessions/fault-{name}-copy", timeout=10).status_code == 404
    assert requests.get(f"{server}/health", timeout=10).json()["status"] == "ok"
    again = requests.post(f"{server}/v1/chat/completions", timeout=60, json={
        "messages": [{"role": "user", "content": "Still there?"}], "session_id": f"fault-{name}",
        "max_tokens": 4, "temperature": 0})
    assert again.status_code == 200 and again.json()["usage"]["prompt_tokens_details"]["cached_tokens"] > 0
