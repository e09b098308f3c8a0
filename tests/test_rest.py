"""The controller's own API client: it sends the kubeconfig's credentials, and pages lists."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml

from blocklearn.devtools.emulator.api import Emulator
from blocklearn.devtools.emulator.serve import kubeconfig
from blocklearn.resources import custom_path
from blocklearn.runtime import kubeclient
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


def test_in_a_pod_the_service_accounts_token_is_read_at_each_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("first\n")
    (account / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setattr(kubeclient, "SERVICE_ACCOUNT", account)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    credentials = kubeclient.configuration()
    assert credentials.host == "https://[fd00::1]:443" and credentials.ssl_ca_cert == str(account / "ca.crt")
    assert credentials.auth_settings()["BearerToken"]["value"] == "Bearer first"
    (account / "token").write_text("rotated")
    assert credentials.auth_settings()["BearerToken"]["value"] == "Bearer rotated"


def test_a_kubeconfigs_inline_certificates_become_files_and_a_plugin_goes_to_the_official_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    data = {name: base64.b64encode(f"{name} PEM".encode()).decode() for name in ("ca", "cert", "key")}
    config: dict[str, Any] = {
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [
            {"name": "k", "cluster": {"server": "https://k:6443", "certificate-authority-data": data["ca"]}}
        ],
        "users": [
            {"name": "u", "user": {"client-certificate-data": data["cert"], "client-key-data": data["key"]}}
        ],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    credentials = kubeclient.configuration(str(path))
    assert isinstance(credentials, kubeclient.Credentials) and credentials.host == "https://k:6443"
    files = (credentials.ssl_ca_cert, credentials.cert_file, credentials.key_file)
    assert [Path(str(f)).read_text() for f in files] == ["ca PEM", "cert PEM", "key PEM"]
    assert credentials.verify_ssl and credentials.auth_settings() == {}
    again = kubeclient.configuration(str(path))  # read again (Rest, kopf's login): no new key file
    assert (again.ssl_ca_cert, again.cert_file, again.key_file) == files
    # An exec plugin (EKS, GKE): the official client's loader runs it.
    answer = '{"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",'
    answer += ' "status": {"token": "from-the-plugin"}}'
    config["users"][0]["user"] = {
        "exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "echo", "args": [answer]}
    }
    path.write_text(yaml.safe_dump(config))
    official = kubeclient.configuration(str(path))
    assert not isinstance(official, kubeclient.Credentials)
    assert Rest(official)._headers()["authorization"] == "Bearer from-the-plugin"


async def test_a_watch_event_larger_than_aiohttps_line_limit_is_read(tmp_path: Path) -> None:
    """An object near the API server's request limit is one watch line of megabytes."""
    from aiohttp import web

    big = {
        "type": "MODIFIED",
        "object": {"metadata": {"name": "b", "resourceVersion": "7"}, "x": "y" * (3 << 20)},
    }

    async def watch(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(json.dumps(big).encode() + b"\n")
        return resp

    app = web.Application()
    app.router.add_get("/apis/blocklearn.dev/v1alpha1/blocks", watch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig(f"http://127.0.0.1:{port}"))
    rest = Rest.from_kubeconfig(str(config))
    try:
        events = [e async for e in rest.watch(custom_path("blocks"), "1", 5)]
    finally:
        await rest.close()
        await runner.cleanup()
    assert len(events) == 1 and len(events[0]["object"]["x"]) == 3 << 20
