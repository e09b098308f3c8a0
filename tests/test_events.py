"""Event names stay valid whatever the Block's name (issue 19: any name the API server admits)."""

from __future__ import annotations

import re

from blocklearn.controller.events import event_body

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def test_an_event_of_a_block_with_the_longest_name_has_a_valid_name() -> None:
    for name in ("n" * 253, "a" * 199 + "-" + "b" * 53, "a" * 199 + "." + "b" * 53):
        block = {"metadata": {"name": name, "namespace": "default"}, "kind": "Block"}
        event = event_body(block, "Warning", "Invalid", "spec.x: wrong")
        assert len(event["metadata"]["name"]) <= 253 and DNS_SUBDOMAIN.match(event["metadata"]["name"])
        assert event["involvedObject"]["name"] == name
