"""A small HTTP client of the server's API, used by every command. Ids in paths are URL-encoded.

HTTP is httpx2's, server-sent events are decoded by its EventSource (lines split at CR/LF only, so the
U+2028 that JSON leaves unescaped in a string stays inside its event; bodies decoded as UTF-8).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from urllib.parse import quote

import httpx2

__all__ = ["Client", "ApiError", "CONNECT_TIMEOUT", "CREATE_TIMEOUT"]

# Seconds to wait for the TCP connection: a server that is up accepts at once, even while it works.
CONNECT_TIMEOUT = 5.0
# Seconds to wait for a session to be created: a busy server creates it late, and a client that gave up
# earlier would leave a session behind that nobody attaches to.
CREATE_TIMEOUT = 3600.0


class ApiError(Exception):
    """The server answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class Client:
    """Talk to one server over HTTP; every method returns the decoded JSON body."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 30.0,
                 transport: httpx2.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.api_key = api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx2.Client(headers=headers, transport=transport)

    def _url(self, *parts: str) -> str:
        return self.base_url + "/" + "/".join(quote(p, safe="") for p in parts)

    def _unreachable(self, exc: Exception) -> ApiError:
        return ApiError(f"cannot reach the server at {self.base_url} (is it running? try `spl server start`, "
                        f"or `spl server connect <url>`)")

    def _busy_or_stuck(self, method: str, parts: tuple[str, ...], waited: float) -> ApiError:
        """A request got no answer in time: ask /health (which never waits on the engine) whether it is busy."""
        route = "/" + "/".join(parts)
        try:
            resp = self._http.get(self._url("health"), timeout=CONNECT_TIMEOUT)
            health = resp.json() if resp.is_success else {}
        except (httpx2.HTTPError, ValueError):
            return ApiError(f"the server at {self.base_url} stopped answering: no reply to {method} {route} in "
                            f"{waited:.0f}s, and /health does not answer either", None, "unresponsive")
        if not isinstance(health, dict) or not health.get("status"):
            return ApiError(f"the server at {self.base_url} gave no reply to {method} {route} in {waited:.0f}s, "
                            f"and /health says HTTP {resp.status_code}", None, "unresponsive")
        return ApiError(f"the server at {self.base_url} is up but busy ({health.get('status')}, "
                        f"{health.get('sessions')} sessions): {method} {route} got no answer in {waited:.0f}s, "
                        f"probably behind long work such as a prefill. The request may still take effect there; "
                        f"check with `spl ls`, or wait longer (SPL_TIMEOUT=seconds).", None, "busy")

    def _bad_url(self, exc: Exception) -> ApiError:
        return ApiError(f"{self.base_url!r} is not a usable server URL ({type(exc).__name__}: {exc}); "
                        f"try http://127.0.0.1:8787")

    def request(self, method: str, *parts: str, json_body: dict | None = None, stream: bool = False,
                timeout: float | None = None) -> httpx2.Response:
        """Send a request and return the response; raise ApiError for 4xx/5xx or no connection.

        A streamed response waits without limit between events (a long prefill sends none); close it.
        """
        wait = timeout or self.timeout
        limit = httpx2.Timeout(None if stream else wait, connect=min(CONNECT_TIMEOUT, wait))
        with self._translated(method, parts, wait):
            req = self._http.build_request(method, self._url(*parts), json=json_body, timeout=limit)
            resp = self._http.send(req, stream=stream)
        if resp.status_code >= 400:
            if stream:
                resp.read()
                resp.close()
            raise self._error(resp)
        return resp

    @contextlib.contextmanager
    def _translated(self, method: str, parts: tuple[str, ...], wait: float) -> Iterator[None]:
        """Turn httpx2's errors into ApiErrors that say what to do: busy, down, or a bad URL."""
        try:
            yield
        except httpx2.ReadTimeout as exc:
            raise self._busy_or_stuck(method, parts, wait) from exc
        except (httpx2.UnsupportedProtocol, httpx2.InvalidURL) as exc:
            raise self._bad_url(exc) from exc
        except httpx2.TransportError as exc:
            raise self._unreachable(exc) from exc

    def get(self, *parts: str) -> dict:
        return self.request("GET", *parts).json()

    def post(self, *parts: str, body: dict | None = None, timeout: float | None = None) -> dict:
        return self.request("POST", *parts, json_body=body or {}, timeout=timeout).json()

    def delete(self, *parts: str) -> dict:
        return self.request("DELETE", *parts).json()

    def health(self) -> dict:
        """Return /health's body, also while the server is loading (503)."""
        try:
            resp = self._http.get(self._url("health"), timeout=self.timeout)
        except (httpx2.UnsupportedProtocol, httpx2.InvalidURL) as exc:
            raise self._bad_url(exc) from exc
        except httpx2.TransportError as exc:
            raise self._unreachable(exc) from exc
        try:
            body = resp.json()
        except ValueError:
            raise ApiError(f"HTTP {resp.status_code} from /health: {resp.text[:200]}", resp.status_code) from None
        if resp.status_code >= 500 and body.get("status") not in ("loading", "error"):
            raise ApiError(f"HTTP {resp.status_code} from /health", resp.status_code)
        return body

    def sessions(self) -> list[dict]:
        """Return the info of every session."""
        return self.get("v1", "sessions").get("data", [])

    def session_exists(self, session_id: str | None) -> bool:
        """Say whether the server holds `session_id` (a malformed id is simply not there)."""
        if not session_id:
            return False
        try:
            self.get("v1", "sessions", session_id)
            return True
        except ApiError as exc:
            if exc.status in (400, 404):
                return False
            raise

    def snapshots(self) -> list[dict]:
        """Return the manifest summary of every snapshot, newest first."""
        return self.get("v1", "snapshots").get("data", [])

    def stream_chat(self, body: dict) -> Iterator[dict]:
        """Post a streaming chat completion and yield its decoded SSE chunks.

        Closing the generator (or dropping it) closes the connection, which makes the server cancel the turn.
        """
        resp = self.request("POST", "v1", "chat", "completions", json_body={**body, "stream": True}, stream=True)
        try:
            yield from _events(event.data for event in httpx2.EventSource(resp))
        except httpx2.HTTPError as exc:
            raise ApiError(f"the connection to {self.base_url} broke during the answer: {exc}") from exc
        finally:
            resp.close()

    def _error(self, resp: httpx2.Response) -> ApiError:
        if resp.status_code == 401:
            hint = ("the API key was refused" if self.api_key else
                    "it requires an API key: pass --api-key or set SPL_API_KEY")
            return ApiError(f"the server at {self.base_url} said 401 Unauthorized: {hint}", 401, "invalid_api_key")
        try:
            err = resp.json()["error"]
            return ApiError(err.get("message") or resp.reason_phrase, resp.status_code, err.get("code"))
        except (ValueError, KeyError, TypeError, AttributeError):
            return ApiError(f"HTTP {resp.status_code}: {resp.text[:200]}", resp.status_code)


def _events(datas: Iterable[str]) -> Iterator[dict]:
    """Decode the events' data until [DONE]; an error event becomes ApiError."""
    for data in datas:
        if data == "[DONE]":
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            raise ApiError(f"the server sent a malformed event: {data[:200]!r}") from None
        if "error" in chunk:
            err = chunk["error"]
            raise ApiError(err.get("message", "error"), None, err.get("code"))
        yield chunk
