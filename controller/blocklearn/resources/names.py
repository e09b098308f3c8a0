"""Object names Blocklearn derives: a readable prefix and a hash, always a valid Kubernetes name."""

from __future__ import annotations

import hashlib
import re

_NOT_NAME = re.compile(r"[^a-z0-9]+")


def hashed_name(readable: str, key: str, *, length: int, hash_chars: int, fallback: str) -> str:
    """`readable` lower-cased, each run of other characters a `-`, cut to fit; then `-` and the first
    `hash_chars` hex digits of the SHA-256 of `key`. At most `length` characters of a DNS label's
    alphabet, the same for the same key, and two keys share a name only when their hashes' prefixes
    do; `fallback` stands in for a `readable` with nothing of that alphabet."""
    digest = hashlib.sha256(key.encode(errors="surrogatepass")).hexdigest()[:hash_chars]
    prefix = _NOT_NAME.sub("-", readable.lower())[: length - hash_chars - 1].strip("-")
    return f"{prefix or fallback}-{digest}"
