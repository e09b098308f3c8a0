"""The one asyncio client for the Kubernetes API, on aiohttp: every call of the controller, the index,
leader election and backfill.

The official client is synchronous (each call would take a worker thread) and passes every answer
through its generated machinery. Objects are plain JSON here, sent and received on one keep-alive
connection pool, with the credentials the official client's configuration loads (kubeconfig or
in-cluster, with its token refresh): `blocklearn.runtime.kubeclient`.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from blocklearn import __version__
from blocklearn.runtime.kubeclient import configuration
from blocklearn.runtime.objects import Obj

MERGE_PATCH = "application/merge-patch+json"
TOKEN_REFRESH_SECONDS = 60.0
# A watch event is one line, and aiohttp refuses a line over twice its read buffer (256 KiB by
# default): an object near the API server's 3 MiB request limit must still fit.
WATCH_READ_BUFSIZE = 4 << 20


class ApiError(Exception):
    """A Kubernetes API error: the HTTP status and the Status object's reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


class Unreachable(aiohttp.ClientConnectionError):
    """No connection to the API server: where it was sought and why not ("Connection refused")."""

    def __init__(self, url: str, cause: OSError) -> None:
        self.url, self.why = url, os.strerror(cause.errno) if cause.errno else str(cause)
        super().__init__(f"cannot reach {url}: {self.why}")


class Rest:
    """JSON over HTTP to one API server; `configuration` is a kubernetes.client.Configuration."""

    def __init__(self, config: Any, timeout: float = 60) -> None:
        self._config = config
        self._base = str(config.host).rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._auth: dict[str, str] = {}  # the credential headers (a bearer token), re-read each minute
        self._auth_read_at = -float("inf")

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None, timeout: float = 60) -> Rest:
        """In a pod, its ServiceAccount; elsewhere the kubeconfig (KUBECONFIG or ~/.kube/config)."""
        return cls(configuration(kubeconfig), timeout)

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self._base.startswith("https"):
            return False
        if not self._config.verify_ssl:
            return False
        context = ssl.create_default_context(cafile=self._config.ssl_ca_cert)
        if self._config.cert_file:
            context.load_cert_chain(self._config.cert_file, self._config.key_file)
        return context

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No cap on connections: each watch holds one for minutes (two a namespace in the
            # controller), and a capped pool would queue the Lease's renewals and the writes behind them.
            connector = aiohttp.TCPConnector(ssl=self._ssl(), limit=0)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers={"User-Agent": f"blocklearn/{__version__}", "Accept": "application/json"},
            )
        return self._session

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Content-Type": content_type} if content_type else {}
        # The official client's refresh hook re-reads the credentials (in a pod, the rotating token
        # file; with a kubeconfig, the whole file: 5% of the controller's CPU when asked per call).
        # A projected token is renewed long before it expires: once a minute is plenty.
        now = time.monotonic()
        if now - self._auth_read_at > TOKEN_REFRESH_SECONDS:
            self._auth = {
                str(setting["key"]): str(setting["value"])
                for setting in self._config.auth_settings().values()
                if setting.get("in") == "header" and setting.get("value")
            }
            self._auth_read_at = now
        return {**headers, **self._auth}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Obj:
        """One call; the answer's JSON. Raises ApiError for a status >= 400, Unreachable when no
        connection is made, other aiohttp errors and TimeoutError when the server fails on the way
        or is slower than `timeout`."""
        data = json.dumps(body, separators=(",", ":")) if body is not None else None
        try:
            async with self._client().request(
                method,
                self._base + path,
                data=data,
                params=params,
                headers=self._headers(content_type if data is not None else None),
                timeout=aiohttp.ClientTimeout(total=timeout) if timeout is not None else self._timeout,
            ) as resp:
                text = await resp.text()
        except aiohttp.ClientConnectorError as exc:
            raise Unreachable(self._base, exc) from exc
        if resp.status >= 400:
            raise _error(resp.status, text)
        return json.loads(text) if text else {}

    async def pages(
        self, path: str, limit: int = 500, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[tuple[list[Obj], str]]:
        """A list in chunks (limit/continue), with the list's resourceVersion. The next page is asked
        for while the caller handles this one, so the server's work and ours overlap; at most two
        pages are in memory."""

        def fetch(token: str) -> asyncio.Task[Obj]:
            query = {**(params or {}), "limit": str(limit), **({"continue": token} if token else {})}
            return asyncio.ensure_future(self.request("GET", path, params=query))

        following = fetch("")
        try:
            while True:
                result = await following
                metadata = result.get("metadata") or {}
                token = str(metadata.get("continue") or "")
                if token:
                    following = fetch(token)
                yield result.get("items") or [], str(metadata.get("resourceVersion", ""))
                if not token:
                    return
        finally:  # the caller stopped early: no request left behind, no error left unread
            following.cancel()
            following.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def watch(self, path: str, version: str, timeout: int) -> AsyncIterator[Obj]:
        """Watch events from a resourceVersion; ends when the server ends the stream (`timeout`)."""
        params = {
            "watch": "true",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout),
        }
        read = aiohttp.ClientTimeout(total=None, sock_read=timeout + 30)
        async with self._client().get(
            self._base + path,
            params=params,
            headers=self._headers(),
            timeout=read,
            read_bufsize=WATCH_READ_BUFSIZE,
        ) as resp:
            if resp.status >= 400:
                raise _error(resp.status, await resp.text())
            async for line in resp.content:
                if line.strip():
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise ApiError(
                            int(status.get("code") or 500),
                            status.get("reason", ""),
                            status.get("message", ""),
                        )
                    yield event


def _error(status: int, text: str) -> ApiError:
    try:
        body = json.loads(text)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return ApiError(status, str(body.get("reason", "")), str(body.get("message", text[:200])))
