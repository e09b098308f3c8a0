"""Who is calling the search API, and which namespaces they may search.

Two ways to present a bearer token, either or both enabled:

- a shared secret (from a mounted Secret): its holder may search any namespace;
- a Kubernetes ServiceAccount token, checked with a TokenReview, as kube-rbac-proxy does. A
  ServiceAccount may search its own namespace only, unless its username or one of its groups is
  trusted (`system:serviceaccount:ops:agent`, `system:serviceaccounts:ops`); then it may search any.
  Identities that are not ServiceAccounts (people) must be trusted by name or group.

TokenReview answers are cached for a minute (failures for a few seconds) under the token's hash, so
a busy assistant costs the API server one review a minute, and a flood of bad tokens no more than
one review a token.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class Caller:
    name: str
    namespaces: frozenset[str] | None  # None: any namespace

    def may_search(self, namespace: str | None) -> bool:
        return self.namespaces is None or namespace in self.namespaces


class AuthUnavailableError(Exception):
    """The token could not be checked now (the API server did not answer): try again later."""


class Authenticator(Protocol):
    async def authenticate(self, token: str) -> Caller | None:
        """The caller this token belongs to, or None when it is not a valid token here."""
        ...


class SharedToken:
    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def authenticate(self, token: str) -> Caller | None:
        # Constant time: the comparison must not tell how much of a guess was right.
        return Caller("shared-token", None) if hmac.compare_digest(token.encode(), self._token) else None


# Posts a TokenReview spec and returns the review's status (raises AuthUnavailableError).
Review = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class TokenReviewer:
    def __init__(
        self,
        review: Review,
        audiences: Iterable[str] = (),
        trusted: Iterable[str] = (),
        ttl: float = 60.0,
        failure_ttl: float = 5.0,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._review = review
        self._audiences = list(audiences)
        self._trusted = frozenset(trusted)
        self._ttl, self._failure_ttl = ttl, failure_ttl
        self._max = max_entries
        self._clock = clock
        self._cache: collections.OrderedDict[bytes, tuple[float, Caller | None]] = collections.OrderedDict()
        self._pending: dict[bytes, asyncio.Future[Caller | None]] = {}

    async def authenticate(self, token: str) -> Caller | None:
        key = hashlib.sha256(token.encode()).digest()  # the token itself is never kept
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        if key in self._pending:  # the same token arriving many times at once: one review
            return await asyncio.shield(self._pending[key])
        future: asyncio.Future[Caller | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            caller = self._caller(await self._review(self._spec(token)))
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        finally:
            del self._pending[key]
        future.set_result(caller)
        self._remember(key, caller)
        return caller

    def _spec(self, token: str) -> dict[str, Any]:
        return {"token": token, **({"audiences": self._audiences} if self._audiences else {})}

    def _caller(self, status: dict[str, Any]) -> Caller | None:
        if not status.get("authenticated"):
            return None
        user = status.get("user") or {}
        username = str(user.get("username") or "")
        if self._trusted & {username, *(user.get("groups") or [])}:
            return Caller(username, None)
        if username.startswith(SERVICE_ACCOUNT_PREFIX):
            namespace = username.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")[0]
            return Caller(username, frozenset({namespace}))
        return Caller(username, frozenset())  # authenticated, but trusted with no namespace

    def _remember(self, key: bytes, caller: Caller | None) -> None:
        ttl = self._ttl if caller is not None else self._failure_ttl
        self._cache[key] = (self._clock() + ttl, caller)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)


async def authenticate(authenticators: list[Authenticator], header: str) -> Caller | None:
    """The caller of an `Authorization: Bearer <token>` header, by the first authenticator that
    knows the token; None when none does."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    # aiohttp decodes header bytes with surrogateescape: a byte over 0x7f arrives as a lone
    # surrogate, which no authenticator could even encode. No valid token holds one.
    if scheme.lower() != "bearer" or not token or not (token.isascii() and token.isprintable()):
        return None
    for authenticator in authenticators:
        caller = await authenticator.authenticate(token)
        if caller is not None:
            return caller
    return None
