"""The controller's own API client: it sends the kubeconfig's credentials, and pages lists."""

from __future__ import annotations

from pathlib import Path

import kmock

from blocklearn.devtools.emulator.api import Emulator
from blocklearn.devtools.emulator.serve import kubeconfig
from blocklearn.resources import custom_path
from blocklearn.runtime.rest import ApiError, Rest
from tests.conftest import Api, block_body


async def test_requests_carry_the_token_and_lists_come_in_pages(
    api: Api, emulator: Emulator, tmp_path: Path
) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig(str(emulator.url).rstrip("/")).replace("token: local", "token: s3cret"))
    seen: list[tuple[str, str]] = []

    async def record(request: kmock.Request) -> None:
        seen.append((request.headers.get("Authorization", ""), request.params.get("limit", "")))

    emulator.fault = record
    for i in range(5):
        await api.call("POST", api.path("blocks"), block_body(f"b{i}"))
    rest = Rest.from_kubeconfig(str(config))
    try:
        pages = [
            [o["metadata"]["name"] for o in items]
            async for items, _ in rest.pages(custom_path("blocks", "default"), 2)
        ]
        assert pages == [["b0", "b1"], ["b2", "b3"], ["b4"]]
        try:
            await rest.request("GET", custom_path("blocks", "default", "missing"))
        except ApiError as exc:
            assert exc.status == 404 and exc.reason == "NotFound"
        else:
            raise AssertionError("a 404 must raise")
    finally:
        await rest.close()
    ours = [s for s in seen if s[0]]
    assert ours and all(auth == "Bearer s3cret" for auth, _ in ours)
    assert [limit for _, limit in ours[:3]] == ["2", "2", "2"]
