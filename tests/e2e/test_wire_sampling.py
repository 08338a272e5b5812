"""The request parser's sampling defaults: the model's temperature unless the request names one."""

from superlinear.frontends.http.wire import parse_chat_request

BODY = {"messages": [{"role": "user", "content": "hi"}]}


def test_a_request_without_temperature_gets_the_models_default():
    assert parse_chat_request(BODY, "m", 16, 0.0).request.sampling.temperature == 0.0
    assert parse_chat_request(BODY, "m", 16, 0.6).request.sampling.temperature == 0.6


def test_a_request_that_names_a_temperature_keeps_it():
    call = parse_chat_request({**BODY, "temperature": 0.9}, "m", 16, 0.0)
    assert call.request.sampling.temperature == 0.9


def test_without_a_model_default_the_openai_default_of_one_applies():
    assert parse_chat_request(BODY, "m", 16).request.sampling.temperature == 1.0
