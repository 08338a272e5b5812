"""/openapi.json against the README and the server: every example request body in the README validates
against the document, and bodies the server answers 400 to fail its schema too.

The README's bodies are read from its Python examples: each `client.chat.completions.create(...)`,
`client.completions.create(...)` and `requests.post(URL, json=...)` call, its arguments evaluated with the
example's own earlier assignments (as the OpenAI SDK sends them: keyword arguments plus `extra_body`).
"""

import ast
import re
from pathlib import Path

import falcon.testing
import jsonschema
import pytest

from superlinear.frontends.http import AppOptions, ServiceHolder, create_app

from .test_server_inprocess import fake_services

README = Path(__file__).resolve().parents[2] / "README.md"
_SDK_PATHS = {"chat.completions.create": "/v1/chat/completions", "completions.create": "/v1/completions"}
# Names the examples take from their surroundings.
_GIVEN = {"model": "fake", "long_prompt": "You are terse. " * 40, "BASE": "http://127.0.0.1:8787", "ids": [1, 2, 3]}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _evaluate(node: ast.AST, env: dict):
    return eval(compile(ast.Expression(node), "README", "eval"), {"__builtins__": {}}, dict(env))  # noqa: S307


def _request(call: ast.Call, env: dict) -> tuple[str, dict] | None:
    """(path, body) of an SDK or requests call, or None for any other call."""
    name = _dotted(call.func)
    sdk = [path for suffix, path in _SDK_PATHS.items() if name.endswith("client." + suffix)]
    if not sdk and name != "requests.post":
        return None
    kwargs = {kw.arg: _evaluate(kw.value, env) for kw in call.keywords if kw.arg}
    if sdk:
        extra = kwargs.pop("extra_body", {})
        return sdk[0], {**kwargs, **extra}
    url = _evaluate(call.args[0], env)
    return "/" + url.split("://", 1)[1].split("/", 1)[1], kwargs["json"]


def _block_requests(source: str) -> list[tuple[str, dict]]:
    env = dict(_GIVEN)
    found = []
    for statement in ast.parse(source).body:
        calls = [n for n in ast.walk(statement) if isinstance(n, ast.Call)]
        for call in calls:
            request = _request(call, env)
            if request:
                found.append(request)
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target = statement.targets[0]
            if isinstance(target, ast.Name) and not calls:
                env[target.id] = _evaluate(statement.value, env)
    return found


def readme_requests() -> list[tuple[str, dict]]:
    """Every (path, body) the README's Python examples send."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return [r for block in blocks for r in _block_requests(block)]


def request_validator(document: dict, path: str) -> jsonschema.Draft202012Validator:
    """A validator of the JSON body of POST `path`, its references resolved within the document."""
    schema = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


@pytest.fixture(scope="module")
def client():
    services = fake_services()
    services.sessions.create("my-chat")
    app = create_app(ServiceHolder(lambda: services, background=False), AppOptions(load_plugins=False))
    yield falcon.testing.TestClient(app)
    services.sessions.engine.stop()


@pytest.fixture(scope="module")
def document(client):
    return client.simulate_get("/openapi.json").json


def test_the_readme_has_examples_of_every_kind():
    paths = {path for path, _ in readme_requests()}
    assert {"/v1/chat/completions", "/v1/completions", "/v1/sessions", "/tokenize", "/detokenize"} <= paths


@pytest.mark.parametrize("path,body", readme_requests(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_readme_example_validates(document, path, body):
    errors = [e.message for e in request_validator(document, path).iter_errors(body)]
    assert not errors, (path, body, errors)


# Bodies the server refuses with 400, each naming the field (param) it refuses.
REFUSED = [
    ("/v1/chat/completions", {"messages": []}, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "temperature": 3}, "temperature"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "n": True}, "n"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "stop": [""]}, "stop"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "bogus": 1}, "bogus"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "presence_penalty": 1}, "presence_penalty"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "session_id": "../x"}, "session_id"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                              "stream_options": {"include_usage": True}}, "stream_options"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                              "logit_bias": {"x": 1}}, "logit_bias"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                              "repetition_detection": {"tail_len": 0}}, "repetition_detection.tail_len"),
    ("/v1/completions", {"prompt": "hi", "suffix": "x"}, "suffix"),
    ("/v1/completions", {"prompt": "hi", "logprobs": 21}, "logprobs"),
    ("/v1/completions", {"max_tokens": 3}, "prompt"),
    ("/v1/completions", {"prompt": "hi", "session_id": "my-chat"}, "session_id"),
    ("/tokenize", {"prompt": 5}, "prompt"),
    ("/tokenize", {"prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}, "prompt"),
    ("/detokenize", {"tokens": [-1]}, "tokens"),
    ("/v1/sessions", {"session_id": "a b"}, "session_id"),
    ("/v1/sessions", {"max_seq_len": 0}, "max_seq_len"),
    ("/v1/sessions/my-chat/resize", {"max_seq_len": "big"}, "max_seq_len"),
    ("/v1/sessions/my-chat/resize", {"max_seq_len": 64, "strategy": "cloud"}, "strategy"),
    ("/v1/sessions/my-chat/rollback", {"keep_messages": -1}, "keep_messages"),
    ("/v1/sessions/my-chat/fork", {"session_id": ""}, "session_id"),
    ("/v1/sessions/my-chat/save", {"title": 7}, "title"),
    ("/v1/sessions/my-chat/save", {"tags": "one"}, "tags"),
    ("/v1/sessions/my-chat/save", {"title": "t" * 257}, "title"),
    ("/v1/snapshots/import", {"path": 3}, "path"),
]


def _template(document: dict, path: str) -> str:
    """The document's path template of a concrete path."""
    if path in document["paths"]:
        return path
    for template in document["paths"]:
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path):
            return template
    raise AssertionError(f"{path} is not in the document")


@pytest.mark.parametrize("path,body,param", REFUSED, ids=lambda v: v if isinstance(v, str) else "")
def test_what_the_server_refuses_the_schema_refuses(client, document, path, body, param):
    answer = client.simulate_post(path, json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json["error"]["param"] == param, answer.json
    assert not request_validator(document, _template(document, path)).is_valid(body), body
