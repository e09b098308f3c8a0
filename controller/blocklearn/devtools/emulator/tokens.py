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

import kmock

from blocklearn.devtools.emulator.statuses import FieldError, bad_request, invalid
from blocklearn.devtools.emulator.wire import json_type

API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
MIN_SECONDS, DEFAULT_SECONDS = 600, 3600  # the API server's floor and kubectl's default
MAX_SECONDS = 1 << 32  # ValidateTokenRequest's ceiling
INT64 = range(-(1 << 63), 1 << 63)
GROUP = "authentication.k8s.io"
# The Go types of the spec fields each kind decodes (TokenRequestSpec, TokenReviewSpec).
SPEC_FIELDS = {
    "TokenRequest": {"audiences": "[]string", "expirationSeconds": "int64", "boundObjectRef": "object"},
    "TokenReview": {"token": "string", "audiences": "[]string"},
}


def decode_spec(kind: str, body: Any) -> dict[str, Any]:
    """The body's spec as the API server decodes it into the kind's Go struct: 400 for a value of
    another JSON type, as `json: cannot unmarshal ...` (a number that is not an int64 too)."""
    spec = body.get("spec") if isinstance(body, dict) else None
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise _undecodable(kind, json_type(spec), f"{kind}.spec", f"v1.{kind}Spec")
    for name, go_type in SPEC_FIELDS[kind].items():
        value = spec.get(name)
        if value is None:
            continue
        field = f"{kind}Spec.spec.{name}"
        if go_type == "[]string":
            if not isinstance(value, list):
                raise _undecodable(kind, json_type(value), field, go_type)
            if wrong := [v for v in value if not isinstance(v, str)]:
                raise _undecodable(kind, json_type(wrong[0]), field, "string")
        elif go_type == "int64" and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise _undecodable(kind, json_type(value), field, go_type)
        elif go_type == "int64" and not (isinstance(value, int) and value in INT64):
            raise _undecodable(kind, f"number {value}", field, go_type)
        elif go_type == "string" and not isinstance(value, str):
            raise _undecodable(kind, json_type(value), field, go_type)
        elif go_type == "object" and not isinstance(value, dict):
            raise _undecodable(kind, json_type(value), field, "v1.BoundObjectReference")
    return spec


def _undecodable(kind: str, what: str, field: str, go_type: str) -> kmock.KubernetesError:
    return bad_request(
        f'{kind} in version "v1" cannot be handled as a {kind}: json: cannot unmarshal {what} into Go'
        f" struct field {field} of type {go_type}"
    )


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
        """Answer a TokenRequest for `account` (the stored ServiceAccount), its spec decoded."""
        seconds = int(spec.get("expirationSeconds") or DEFAULT_SECONDS)
        if not MIN_SECONDS <= seconds <= MAX_SECONDS:
            why = "less than 10 minutes" if seconds < MIN_SECONDS else "larger than 2^32 seconds"
            error = FieldError(
                "spec.expirationSeconds",
                "FieldValueInvalid",
                f"Invalid value: {seconds}: may not specify a duration {why}",
            )
            raise invalid("TokenRequest", GROUP, account["metadata"]["name"], [error])
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
