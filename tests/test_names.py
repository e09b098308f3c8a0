"""Derived object names: a readable prefix and a hash, always a valid Kubernetes name."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from blocklearn.resources.names import hashed_name

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@given(st.text(max_size=300), st.text(max_size=50))
def test_any_text_makes_a_dns_label_of_the_length_asked_for(readable: str, key: str) -> None:
    name = hashed_name(readable, key, length=63, hash_chars=16, fallback="example")
    assert DNS_LABEL.match(name) and len(name) <= 63
    assert name == hashed_name(readable, key, length=63, hash_chars=16, fallback="example")


def test_the_prefix_is_readable_and_the_hash_tells_keys_apart() -> None:
    a = hashed_name("kubectl get pods -A", "one", length=53, hash_chars=12, fallback="trace")
    b = hashed_name("kubectl get pods -A", "two", length=53, hash_chars=12, fallback="trace")
    assert a.startswith("kubectl-get-pods-a-") and b.startswith("kubectl-get-pods-a-") and a != b
    assert hashed_name("¿¡", "k", length=20, hash_chars=8, fallback="trace").startswith("trace-")
