"""`blocklearn emulator`: the local Kubernetes API on a port, with the CRDs from `crds/` registered."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import kmock
import yaml

from blocklearn.devtools.emulator.api import Emulator
from blocklearn.devtools.emulator.journal import Journal
from blocklearn.resources.crds import all_crds

log = logging.getLogger("blocklearn.devtools.emulator")


def load_crds(directory: Path | None) -> list[dict[str, Any]]:
    """CRDs from a directory of YAML files; the built-in ones when none is given."""
    if directory is None:
        return all_crds()
    docs = []
    for path in sorted(directory.glob("*.yaml")):
        docs += [
            d
            for d in yaml.safe_load_all(path.read_text())
            if d and d.get("kind") == "CustomResourceDefinition"
        ]
    if not docs:
        raise SystemExit(f"no CustomResourceDefinitions found in {directory}")
    return docs


def kubeconfig(server: str, namespace: str = "default") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "blocklearn-local", "cluster": {"server": server}}],
            "users": [{"name": "blocklearn-local", "user": {"token": "local"}}],
            "contexts": [
                {
                    "name": "blocklearn-local",
                    "context": {
                        "cluster": "blocklearn-local",
                        "user": "blocklearn-local",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": "blocklearn-local",
        },
        sort_keys=False,
    )


async def serve(
    host: str,
    port: int,
    crds_dir: Path | None,
    kubeconfig_out: Path | None,
    persist: Path | None,
    stop: asyncio.Event,
) -> None:
    emulator = Emulator()
    emulator.register_crds(load_crds(crds_dir))
    journal = Journal(persist) if persist is not None else None
    if journal is not None:
        journal.open(emulator)
    async with emulator, kmock.Server(emulator, host=host, port=port) as server:
        url = f"http://{server.host}:{server.port}"
        if kubeconfig_out is not None:
            kubeconfig_out.parent.mkdir(parents=True, exist_ok=True)
            kubeconfig_out.write_text(kubeconfig(url))
        log.info("Serving Kubernetes API: url=%s kubeconfig=%s", url, kubeconfig_out or "-")
        try:
            await stop.wait()
        finally:
            emulator.drop_watches()  # else the server waits for every open watch before it stops
            if journal is not None:
                journal.close(emulator)
