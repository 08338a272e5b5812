"""`spl-server --tensor-parallel 2` on CPU (two gloo ranks, the default model) answers like the
single-process server, reports both ranks in /health and /metrics, and its session snapshots load into
the single-process server and the other way round (both servers share one snapshot directory); when a
rank dies, /health says so."""

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from openai import OpenAI

from .test_http_responses import check_health

NO_THINK = {"enable_thinking": False}
FIRST = [{"role": "user", "content": "Name three colours."}]
NEXT = [{"role": "user", "content": "And three animals?"}]


def greedy_turn(url: str, sid: str, messages: list, n: int = 8) -> list[str]:
    r = requests.post(f"{url}/v1/chat/completions", timeout=120, json={
        "session_id": sid, "messages": messages, "max_tokens": n, "temperature": 0,
        "chat_template_kwargs": NO_THINK, "logprobs": True})
    assert r.status_code == 200, r.text
    return [t["token"] for t in r.json()["choices"][0]["logprobs"]["content"]]


def stateless_turn(url: str, messages: list, n: int = 10) -> list[str]:
    r = requests.post(f"{url}/v1/chat/completions", timeout=120, json={
        "messages": messages, "max_tokens": n, "temperature": 0, "chat_template_kwargs": NO_THINK,
        "logprobs": True})
    assert r.status_code == 200, r.text
    return [t["token"] for t in r.json()["choices"][0]["logprobs"]["content"]]


def saved_after_a_turn(url: str, sid: str) -> tuple[str, list[str]]:
    assert requests.post(f"{url}/v1/sessions", json={"session_id": sid}, timeout=10).status_code in (200, 201)
    greedy_turn(url, sid, FIRST)
    r = requests.post(f"{url}/v1/sessions/{sid}/save", json={}, timeout=60)
    assert r.status_code in (200, 201), r.text
    return r.json()["snapshot_id"], greedy_turn(url, sid, NEXT)


def loaded_turn(url: str, snapshot_id: str, sid: str) -> list[str]:
    r = requests.post(f"{url}/v1/snapshots/{snapshot_id}/load", json={"session_id": sid}, timeout=60)
    assert r.status_code in (200, 201), r.text
    return greedy_turn(url, sid, NEXT)


def test_a_server_sharded_over_two_gloo_ranks_answers_like_one_process(
    server, server_env, launch_server, tmp_path
):
    flags = ("--tensor-parallel", "2", "--threads", "4", "--no-plugins")
    with launch_server(server_env, tmp_path / "server.log", *flags) as (url, _proc):
        health = requests.get(f"{url}/health", timeout=5).json()
        assert [(r["rank"], r["alive"]) for r in health["ranks"]] == [(0, True), (1, True)]
        check_health(200, health)  # the Health schema declares every field sent, the rows' too
        assert set(health) == {"status", "model", "sessions", "torch_threads", "ranks"}
        metrics = requests.get(f"{url}/metrics", timeout=5).text
        assert 'spl_rank_alive{rank="1"} 1.0' in metrics and 'spl_rank_weight_bytes{rank="1"}' in metrics
        assert all(row["weight_bytes"] > 0 for row in health["ranks"])

        sharded, single = (OpenAI(base_url=f"{u}/v1", api_key="x", max_retries=0, timeout=120) for u in (url, server))
        args = dict(messages=FIRST, max_tokens=12, temperature=0, extra_body={"chat_template_kwargs": NO_THINK})
        one = single.chat.completions.create(model=single.models.list().data[0].id, **args)
        two = sharded.chat.completions.create(model=sharded.models.list().data[0].id, **args)
        assert two.choices[0].message.content == one.choices[0].message.content

        # Two requests at once: the engine interleaves (and may batch) their steps on every rank.
        prompts = [[{"role": "user", "content": f"Count to {n}."}] for n in (3, 7)]
        with ThreadPoolExecutor(2) as pool:
            both = list(pool.map(lambda m: stateless_turn(url, m), prompts))
        assert both == [stateless_turn(server, m) for m in prompts]

        from_sharded, sharded_next = saved_after_a_turn(url, "tp-sharded")
        assert loaded_turn(server, from_sharded, "tp-into-single") == sharded_next
        from_single, single_next = saved_after_a_turn(server, "tp-single")
        assert single_next == sharded_next
        assert loaded_turn(url, from_single, "tp-into-sharded") == single_next

        # A rank that dies turns /health to 503, naming it.
        os.kill(health["ranks"][1]["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (r := requests.get(f"{url}/health", timeout=5)).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert r.status_code == 503 and "rank(s) [1]" in r.json()["error"]
        check_health(503, r.json())
