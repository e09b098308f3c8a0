"""ServiceAccount tokens for the emulator: issued by TokenRequest, checked by TokenReview.

As the API server does it: `kubectl create token SA [--audience A] [--duration D]` posts a
TokenRequest to the ServiceAccount's `token` subresource; a service that receives the token posts a
TokenReview and learns who it belongs to. A token is valid until it expires or its ServiceAccount is
deleted (tokens are bound to the account's uid), and only for the audiences it was issued for (the
API server's own by default). Tokens here are opaque random strings, not signed JWTs: only this
emulator can check them, which is all a test needs.
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
MIN_SECONDS, DEFAULT_SECONDS = 600, 3600  # the API server's floor and kubectl's default


@dataclass(frozen=True)
class Issued:
    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]
    expires: datetime.datetime


class TokenIssuer:
    def __init__(self, now: Callable[[], datetime.datetime] | None = None) -> None:
        self._now = now or (lambda: datetime.datetime.now(datetime.UTC))
        self._issued: dict[str, Issued] = {}

    def request(self, namespace: str, account: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        """Answer a TokenRequest for `account` (the stored ServiceAccount)."""
        seconds = max(MIN_SECONDS, int(spec.get("expirationSeconds") or DEFAULT_SECONDS))
        audiences = tuple(spec.get("audiences") or [API_AUDIENCE])
        expires = self._now().replace(microsecond=0) + datetime.timedelta(seconds=seconds)
        token = secrets.token_urlsafe(32)
        meta = account["metadata"]
        self._issued[token] = Issued(namespace, meta["name"], meta["uid"], audiences, expires)
        return {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"name": meta["name"], "namespace": namespace},
            "spec": {"audiences": list(audiences), "expirationSeconds": seconds},
            "status": {"token": token, "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")},
        }

    def review(self, spec: dict[str, Any], account_uid: Callable[[str, str], str | None]) -> dict[str, Any]:
        """Answer a TokenReview; `account_uid(namespace, name)` is the ServiceAccount's uid now."""
        wanted = tuple(spec.get("audiences") or [API_AUDIENCE])
        issued = self._issued.get(str(spec.get("token") or ""))
        status: dict[str, Any]
        if issued is None:
            status = {"authenticated": False, "error": "invalid bearer token"}
        elif issued.expires <= self._now():
            status = {"authenticated": False, "error": "token has expired"}
        elif account_uid(issued.namespace, issued.name) != issued.uid:
            status = {"authenticated": False, "error": "service account has been deleted"}
        elif not (matched := [a for a in wanted if a in issued.audiences]):
            status = {"authenticated": False, "error": "token audiences do not match"}
        else:
            status = {
                "authenticated": True,
                "audiences": matched,
                "user": {
                    "username": f"system:serviceaccount:{issued.namespace}:{issued.name}",
                    "uid": issued.uid,
                    "groups": [
                        "system:serviceaccounts",
                        f"system:serviceaccounts:{issued.namespace}",
                        "system:authenticated",
                    ],
                },
            }
        return {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "metadata": {"creationTimestamp": None},
            "spec": {"token": spec.get("token"), "audiences": list(spec.get("audiences") or [])},
            "status": status,
        }
