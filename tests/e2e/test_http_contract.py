"""One declaration per request body: what `parse` accepts is exactly what the body's schema in /openapi.json
accepts, on random bodies built from the document's own field names and boundary values.

Rules the schema cannot state (the served model's name, the vocabulary, which sessions exist, a named
tool_choice among the tools) are checked after `parse`, by the routes, and are not part of this.
"""

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from superlinear.core import InvalidRequest
from superlinear.frontends.http.bodies import BODIES
from superlinear.frontends.http.contract import parse
from superlinear.frontends.http.openapi import openapi_document
from superlinear.frontends.http.wire_bodies import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    TokenizeRequest,
)

REQUESTS = (ChatCompletionRequest, CompletionRequest, TokenizeRequest, DetokenizeRequest, *BODIES)
DOCUMENT = openapi_document()


def _walk(node, names: set, literals: list) -> None:
    """Collect every property name and every value the document names (enums, consts, bounds +- 1)."""
    if isinstance(node, dict):
        names.update(node.get("properties", {}) if isinstance(node.get("properties"), dict) else ())
        literals.extend(node.get("enum", ()))
        if "const" in node:
            literals.append(node["const"])
        for key in ("minimum", "maximum", "minLength", "maxLength", "maxItems", "minItems"):
            if isinstance(node.get(key), int):
                literals.extend((node[key] - 1, node[key], node[key] + 1))
        for key in ("maxLength", "minLength"):
            if isinstance(node.get(key), int) and node[key] < 5000:
                literals.extend(("x" * node[key], "x" * (node[key] + 1)))
        for child in node.values():
            _walk(child, names, literals)
    elif isinstance(node, list):
        for child in node:
            _walk(child, names, literals)


NAMES, LITERALS = set(), []
_walk(DOCUMENT["components"]["schemas"], NAMES, LITERALS)
NAMES.update(("type", "text", "name", "function", "role", "content", "ok-id", "../x", "", " gpu"))
LITERALS.extend(("user", "text", "ok-id", "a b", "", "7", "x" * 129, 0.5, -0.5, 2.5, 1e300))
# JSON Schema counts 2.0 as an integer and Python does not: bodies hold floats with a fraction only.
_SCALARS = (st.none() | st.booleans() | st.integers(-(1 << 65), 1 << 65) | st.text(max_size=4)
            | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())
            | st.sampled_from([v for v in LITERALS if not (isinstance(v, float) and v.is_integer())]))
VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(sorted(NAMES)), inner, max_size=4), max_leaves=12)


def _validator(cls) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{cls.__name__}",
                                            "components": DOCUMENT["components"]})


def _parses(cls, raw) -> bool:
    try:
        parse(cls, raw)
    except InvalidRequest:
        return False
    return True


def _number(s: dict):
    low, high = s.get("minimum"), s.get("maximum")
    return st.floats(low, high, allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())


def _string(s: dict):
    if "pattern" in s:
        return st.from_regex(s["pattern"].strip("^$"), fullmatch=True).filter(
            lambda t: len(t) <= s.get("maxLength", len(t)))
    return st.text(min_size=s.get("minLength", 0), max_size=min(s.get("maxLength", 6), 6))


def _object(s: dict):
    if "properties" in s:
        props, required = s["properties"], set(s.get("required", ()))
        return st.fixed_dictionaries({k: _valid(v) for k, v in props.items() if k in required},
                                     optional={k: _valid(v) for k, v in props.items() if k not in required})
    if isinstance(s.get("additionalProperties"), dict):
        keys = _string({"pattern": s.get("propertyNames", {}).get("pattern", ".{0,3}")})
        return st.dictionaries(keys, _valid(s["additionalProperties"]), max_size=3)
    return st.dictionaries(st.text(max_size=3), _SCALARS, max_size=2)


_TYPES = {"null": lambda s: st.none(), "boolean": lambda s: st.booleans(), "number": _number, "string": _string,
          "integer": lambda s: st.integers(s.get("minimum", -(1 << 40)), s.get("maximum", 1 << 40)),
          "array": lambda s: st.lists(_valid(s.get("items", {})), min_size=s.get("minItems", 0),
                                      max_size=min(s.get("maxItems", 3), 3)),
          "object": _object}


def _valid(s: dict):
    """Values the schema `s` mostly accepts (rules between fields aside): the near side of each boundary."""
    if "$ref" in s:
        return st.deferred(lambda: _valid(DOCUMENT["components"]["schemas"][s["$ref"].rsplit("/", 1)[1]]))
    if "enum" in s or "const" in s:
        return st.sampled_from(s["enum"] if "enum" in s else [s["const"]])
    kind = s.get("type")
    if isinstance(kind, list):
        return st.one_of([_valid({**s, "type": k}) for k in kind])
    if kind is None and ("anyOf" in s or "oneOf" in s):
        return st.one_of([_valid(sub) for sub in s.get("anyOf") or s["oneOf"]])
    return _TYPES[kind](s) if kind else VALUES


def _mutated(body: dict, cls):
    """The body with one field set to any value, or removed."""
    names = [a.name for a in cls.__attrs_attrs__] + ["unknown_field"]
    return st.one_of(st.tuples(st.sampled_from(names), VALUES).map(lambda kv: {**body, kv[0]: kv[1]}),
                     st.sampled_from(sorted(body) or [""]).map(lambda k: {n: v for n, v in body.items() if n != k}))


def _bodies(cls):
    valid = _valid(DOCUMENT["components"]["schemas"][cls.__name__])
    return st.one_of(valid, valid.flatmap(lambda body: _mutated(body, cls)))


@pytest.mark.parametrize("cls", REQUESTS, ids=lambda c: c.__name__)
def test_parse_and_the_schema_accept_the_same_bodies(cls):
    validator = _validator(cls)

    @given(raw=_bodies(cls))
    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def agree(raw):
        assert _parses(cls, raw) == validator.is_valid(raw), (raw, [e.message for e in validator.iter_errors(raw)])

    agree()


@pytest.mark.parametrize("cls", REQUESTS, ids=lambda c: c.__name__)
def test_each_body_has_a_schema_that_is_itself_valid(cls):
    jsonschema.Draft202012Validator.check_schema(DOCUMENT["components"]["schemas"][cls.__name__])


_TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
_NAMED = {"type": "function", "function": {"name": "f"}}
_JSON = {"type": "json_object"}


@pytest.mark.parametrize("extra,ok", [
    ({"tool_choice": "required"}, False), ({"tool_choice": "required", "tools": None}, False),
    ({"tool_choice": "required", "tools": []}, False), ({"tool_choice": "required", "tools": [_TOOL]}, True),
    ({"tool_choice": "auto"}, True), ({"tool_choice": None, "response_format": _JSON}, True),
    ({"tool_choice": "required", "tools": [_TOOL], "response_format": _JSON}, False),
    ({"tool_choice": _NAMED, "tools": [_TOOL], "response_format": _JSON}, False),
    ({"tool_choice": _NAMED, "tools": [_TOOL], "response_format": {"type": "text"}}, True),
    ({"tool_choice": "auto", "tools": [_TOOL], "response_format": _JSON}, True),
    ({"tool_choice": "required", "tools": [_TOOL], "response_format": None}, True),
])
def test_the_tool_choice_rules_are_checked_and_stated_alike(extra, ok):
    """tool_choice "required" needs tools; a forced choice excludes a JSON response_format."""
    raw = {"messages": [{"role": "user", "content": "hi"}], **extra}
    assert _parses(ChatCompletionRequest, raw) == ok
    assert _validator(ChatCompletionRequest).is_valid(raw) == ok
