"""A small HTTP client of the server's API, used by every command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import requests

__all__ = ["Client", "ApiError"]


class ApiError(Exception):
    """The server answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class Client:
    """Talk to one server; ids in paths are URL-encoded."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = requests.Session()
        if api_key:
            self._http.headers["Authorization"] = f"Bearer {api_key}"

    def _url(self, *parts: str) -> str:
        return self.base_url + "/" + "/".join(quote(p, safe="") for p in parts)

    def request(self, method: str, *parts: str, json_body: dict | None = None, stream: bool = False):
        try:
            resp = self._http.request(method, self._url(*parts), json=json_body, stream=stream,
                                      timeout=None if stream else self.timeout)
        except requests.ConnectionError as exc:
            raise ApiError(f"cannot reach the server at {self.base_url} (is it running? try `spl server start`)") from exc
        if resp.status_code >= 400:
            raise _error(resp)
        return resp

    def get(self, *parts: str) -> dict:
        return self.request("GET", *parts).json()

    def post(self, *parts: str, body: dict | None = None) -> dict:
        return self.request("POST", *parts, json_body=body or {}).json()

    def delete(self, *parts: str) -> dict:
        return self.request("DELETE", *parts).json()

    def health(self) -> dict:
        """Return /health's body, also while the server is loading (503)."""
        try:
            resp = self._http.get(self._url("health"), timeout=self.timeout)
        except requests.ConnectionError as exc:
            raise ApiError(f"cannot reach the server at {self.base_url}") from exc
        try:
            body = resp.json()
        except ValueError:
            raise ApiError(f"HTTP {resp.status_code} from /health: {resp.text[:200]}", resp.status_code) from None
        if resp.status_code >= 500 and body.get("status") not in ("loading", "error"):
            raise ApiError(f"HTTP {resp.status_code} from /health", resp.status_code)
        return body

    def stream_chat(self, body: dict) -> Iterator[dict]:
        """Post a streaming chat completion and yield its decoded SSE chunks."""
        resp = self.request("POST", "v1", "chat", "completions", json_body={**body, "stream": True}, stream=True)
        with resp:
            for line in resp.iter_lines(decode_unicode=True):
                if not line or not line.startswith("data: "):
                    continue
                data = line[len("data: "):]
                if data == "[DONE]":
                    return
                chunk = json.loads(data)
                if "error" in chunk:
                    err = chunk["error"]
                    raise ApiError(err.get("message", "error"), None, err.get("code"))
                yield chunk


def _error(resp: requests.Response) -> ApiError:
    try:
        err = resp.json()["error"]
        return ApiError(err.get("message") or resp.reason, resp.status_code, err.get("code"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return ApiError(f"HTTP {resp.status_code}: {resp.text[:200]}", resp.status_code)
