"""Attacks from issue #16 that need only the app in-process (over the core's fakes): each got through once."""

import pytest
from superlinear.core import InvalidRequest
from superlinear.frontends.http.wire import MAX_STOP_CHARS, parse_chat_request

from .test_server_inprocess import USER, chat, client, model  # noqa: F401 - fixtures


def test_a_stop_string_over_the_length_limit_is_a_400_naming_stop(client):
    result = chat(client, stop=["ok", "x" * (MAX_STOP_CHARS + 1)])
    assert result.status_code == 400
    assert result.json["error"]["param"] == "stop"
    assert str(MAX_STOP_CHARS) in result.json["error"]["message"]
    assert chat(client, stop="x" * MAX_STOP_CHARS, max_tokens=2).status_code == 200


def test_too_many_stop_strings_are_refused():
    with pytest.raises(InvalidRequest) as err:
        parse_chat_request({"messages": USER, "stop": ["a"] * 17}, "m", 4)
    assert err.value.param == "stop"


class _Handle:
    """A turn handle that only records whether it was cancelled."""

    cancelled = False
    queue_seconds = 0.0

    def cancel(self):
        self.cancelled = True


def test_a_streamed_body_closed_before_its_first_chunk_cancels_the_turn():
    from superlinear.frontends.http.chat import TurnItems
    from superlinear.frontends.http.disconnect import ClientWatch
    from superlinear.frontends.http.metrics import Metrics
    from superlinear.frontends.http.streaming import SseBody

    timer = Metrics(lambda: None).turn(0.0, True)
    handle = _Handle()
    body = SseBody(TurnItems(handle, ClientWatch(None), timer, False), "chatcmpl-x", "m", False)
    body.close()  # what the server does when the first write fails: the body was never iterated
    assert handle.cancelled
