"""A third-party plugin installed through an entry point adds a stop rule and an HTTP route to a real server."""

from pathlib import Path

import pytest
import requests

PLUGIN_SRC = Path(__file__).parent / "plugin_pkg"
TRIGGER = "\x00plugin-test:cut-after-3"
ROUTE = "/v1/plugin-test/echo"


def install_entry_point(site: Path) -> None:
    """Write the distribution metadata pip would write, so importlib.metadata finds the entry point."""
    info = site / "superlinear_test_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: superlinear-test-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[superlinear]\ntest_plugin = superlinear_test_plugin\n")


@pytest.fixture(scope="module")
def plugin_server(server_env, tmp_path_factory, launch_server):
    site = tmp_path_factory.mktemp("site")
    install_entry_point(site)
    path = [str(site), str(PLUGIN_SRC), server_env.get("PYTHONPATH", "")]
    env = {**server_env, "PYTHONPATH": ":".join(p for p in path if p)}
    log = tmp_path_factory.mktemp("log-plugin") / "server.log"
    # No --no-plugins: entry points load.
    with launch_server(env, log, "--threads", "4") as (url, _proc):
        yield url


def test_the_plugin_route_answers(plugin_server):
    got = requests.get(f"{plugin_server}{ROUTE}", timeout=10)
    assert got.status_code == 200 and got.json() == {"plugin": "superlinear_test_plugin", "path": ROUTE}
    posted = requests.post(f"{plugin_server}{ROUTE}", json={"x": 1}, timeout=10).json()
    assert posted["body"] == {"x": 1}
    assert requests.delete(f"{plugin_server}{ROUTE}", timeout=10).status_code == 405


def test_the_plugin_stop_rule_ends_the_answer(plugin_server):
    body = {"messages": [{"role": "user", "content": "Talk."}], "max_tokens": 8, "temperature": 0,
            "chat_template_kwargs": {"enable_thinking": False}}
    url = f"{plugin_server}/v1/chat/completions"
    plain = requests.post(url, json=body, timeout=60).json()
    if plain["usage"]["completion_tokens"] <= 3:
        pytest.skip("the greedy answer ends by itself within three tokens")
    cut = requests.post(url, json={**body, "stop": [TRIGGER]}, timeout=60).json()
    assert cut["usage"]["completion_tokens"] == 3
    assert cut["choices"][0]["message"]["content"] == ""
    assert cut["choices"][0]["finish_reason"] == "stop"
    streamed = requests.post(url, json={**body, "stop": [TRIGGER], "stream": True}, timeout=60).text
    assert '"content": "' not in streamed.replace('"content": ""', ""), "no text of the cut answer leaks"
    assert '"finish_reason": "stop"' in streamed


def test_built_in_rules_still_work_beside_the_plugin(plugin_server):
    body = {"messages": [{"role": "user", "content": "Talk."}], "max_tokens": 8, "temperature": 0,
            "chat_template_kwargs": {"enable_thinking": False}, "stop": ["\x01never"]}
    answer = requests.post(f"{plugin_server}/v1/chat/completions", json=body, timeout=60).json()
    assert answer["usage"]["completion_tokens"] > 3 or answer["choices"][0]["finish_reason"] == "stop"
