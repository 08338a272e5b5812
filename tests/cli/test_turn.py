"""How a streamed turn is shown: collapsed or expanded thinking, the stats line, cancellation, busy retry."""

from __future__ import annotations

import httpx2
import pytest

from superlinear.frontends.cli.infra.client import ApiError, Client
from superlinear.frontends.cli.repl.turn import TurnView, run_turn

USAGE = {"prompt_tokens": 20, "completion_tokens": 6, "prompt_tokens_details": {"cached_tokens": 12},
         "completion_tokens_details": {"reasoning_tokens": 3}}


def chunks(finish="stop"):
    yield {"choices": [{"delta": {"role": "assistant"}}]}
    for text in ("I think", " hard", "."):
        yield {"choices": [{"delta": {"reasoning_content": text}}]}
    for text in ("Hello", " world"):
        yield {"choices": [{"delta": {"content": text}}]}
    yield {"choices": [{"delta": {}, "finish_reason": finish}]}
    yield {"choices": [], "usage": USAGE}


class FakeClient:
    """Stands in for Client.stream_chat; remembers whether each stream was closed."""

    def __init__(self, *streams):
        self.streams = list(streams)
        self.closed = []
        self.bodies = []

    def stream_chat(self, body):
        self.bodies.append(body)
        source = self.streams.pop(0)

        def gen():
            try:
                if isinstance(source, Exception):
                    raise source
                yield from source
            finally:
                self.closed.append(True)

        return gen()


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 0.25
        return self.t


def test_collapsed_thinking_becomes_one_summary_line_then_the_answer_and_stats():
    out = []
    result = run_turn(FakeClient(chunks()), {"messages": []}, TurnView(out.append, clock=Clock()), clock=Clock())
    text = "".join(out)
    assert "I think hard" not in text
    assert "thinking: 13 chars" in text and "/think show" in text
    assert "assistant: Hello world\n" in text
    assert "prompt=20 cached=12 completion=6 reasoning=3 finish=stop" in text
    assert result.reasoning == "I think hard." and result.content == "Hello world"
    assert result.stats.ttft > 0 and result.stats.rate() > 0


def test_expanded_thinking_streams_dimmed():
    out = []
    run_turn(FakeClient(chunks()), {}, TurnView(out.append, color=True, expand_thinking=True))
    text = "".join(out)
    assert text.startswith("thinking: \x1b[2mI think\x1b[0m")
    assert "\nassistant: Hello world" in text


def test_on_a_terminal_collapsed_thinking_is_redrawn_in_place():
    out = []
    run_turn(FakeClient(chunks()), {}, TurnView(out.append, live=True, clock=Clock()))
    assert any(piece.startswith("\r\x1b[Kthinking... ") for piece in out)


def test_ctrl_c_closes_the_stream_and_says_the_session_is_unchanged():
    out = []

    def write(text):
        out.append(text)
        if text == "Hello":
            raise KeyboardInterrupt

    client = FakeClient(chunks())
    with pytest.raises(KeyboardInterrupt):
        run_turn(client, {}, TurnView(write))
    assert client.closed == [True]
    assert out[-1] == "(cancelled; the session is unchanged)\n"


def test_a_busy_session_is_retried_until_the_cancelled_turn_has_unwound():
    busy = ApiError("busy", 409, "session_busy")
    client = FakeClient(busy, busy, chunks())
    sleeps = []
    result = run_turn(client, {}, TurnView(lambda t: None), sleep=sleeps.append)
    assert result.content == "Hello world"
    assert len(sleeps) == 2 and len(client.bodies) == 3
    assert client.bodies[0]["stream_options"] == {"include_usage": True}


def test_other_errors_are_not_retried():
    client = FakeClient(ApiError("bad", 400, "invalid_request"))
    with pytest.raises(ApiError, match="bad"):
        run_turn(client, {}, TurnView(lambda t: None), sleep=lambda s: None)
    assert len(client.bodies) == 1


def _sse_client(pieces: list[bytes], status: int = 200) -> Client:
    """A Client whose server answers every request with `pieces` as one streamed event-stream body."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers={"content-type": "text/event-stream"},
                               stream=httpx2.ByteStream(b"".join(pieces)) if status >= 400 else _Chunks(pieces))

    return Client("http://spl.test", transport=httpx2.MockTransport(answer))


class _Chunks(httpx2.SyncByteStream):
    def __init__(self, pieces: list[bytes]):
        self.pieces = pieces

    def __iter__(self):
        yield from self.pieces


def test_streamed_events_split_only_at_newlines_and_decode_utf8_across_chunks():
    payload = ('data: {"t": "a\u2028b\x85c é"}\n\n: keep-alive\n\ndata: {"t": "2"}\r\n\r\n'
               'data: [DONE]\n\ndata: {"t": "after"}\n\n').encode()
    cut = payload.index("é".encode()) + 1  # inside the two bytes of é
    client = _sse_client([payload[:5], payload[5:cut], payload[cut:]])
    assert list(client.stream_chat({})) == [{"t": "a\u2028b\x85c é"}, {"t": "2"}]


def test_an_error_event_and_a_malformed_event_become_api_errors():
    err = b'data: {"error": {"message": "engine stopped", "code": "unavailable"}}\n\n'
    with pytest.raises(ApiError, match="engine stopped") as exc:
        list(_sse_client([err]).stream_chat({}))
    assert exc.value.code == "unavailable"
    with pytest.raises(ApiError, match="malformed event"):
        list(_sse_client([b"data: {not json\n\n"]).stream_chat({}))


def test_an_http_error_before_the_stream_carries_the_openai_error_object():
    body = b'{"error": {"message": "session busy", "code": "session_busy", "type": "x"}}'
    with pytest.raises(ApiError, match="session busy") as exc:
        list(_sse_client([body], status=409).stream_chat({}))
    assert (exc.value.status, exc.value.code) == (409, "session_busy")


def test_no_server_and_a_bad_url_are_told_apart():
    with pytest.raises(ApiError, match="cannot reach the server"):
        Client("http://127.0.0.1:9", timeout=2.0).sessions()
    with pytest.raises(ApiError, match="not a usable server URL"):
        Client("ftp://127.0.0.1:9").sessions()


def test_control_characters_in_model_text_never_reach_the_terminal():
    out = []
    stream = [{"choices": [{"delta": {"content": "hi\x1b[2J\x07 there\n\tok"}}]}]
    run_turn(FakeClient(stream), {}, TurnView(out.append))
    assert "assistant: hi[2J there\n\tok" in "".join(out)


def test_a_failing_slash_command_does_not_end_the_repl():
    from superlinear.frontends.cli.repl.base import Repl
    from superlinear.plugins import ReplCommand

    def boom(repl, arg):
        raise RuntimeError("plugin bug")

    out = []
    repl = Repl(client=None, session_id="s", commands={"/boom": ReplCommand(boom, "")}, write=out.append)
    assert repl.handle("/boom") is True
    assert out == ["error: /boom failed: RuntimeError: plugin bug\n"]


class SessionClient(FakeClient):
    """A FakeClient whose session gains two messages when its turn completes before Ctrl-C lands."""

    def __init__(self, *streams, completes: bool):
        super().__init__(*streams)
        self.completes = completes
        self.gets = 0

    def get(self, *parts):
        self.gets += 1
        done = self.completes and self.gets > 1
        return {"busy": False, "message_count": 4 if done else 2}


@pytest.mark.parametrize("completes", [False, True])
def test_ctrl_c_says_whether_the_server_kept_the_turn(completes):
    out = []

    def write(text):
        out.append(text)
        if text == "Hello":
            raise KeyboardInterrupt

    client = SessionClient(chunks(), completes=completes)
    with pytest.raises(KeyboardInterrupt):
        run_turn(client, {"session_id": "s"}, TurnView(write))
    expected = ("(interrupted after the turn had finished; the session keeps it)\n" if completes
                else "(cancelled; the session is unchanged)\n")
    assert out[-1] == expected and client.gets == 2
