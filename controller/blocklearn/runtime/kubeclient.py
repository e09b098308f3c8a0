"""Credentials for the Kubernetes API: the official client loads them (in-cluster or a kubeconfig).

`Rest`, the asyncio client every process uses, sends them; the official client itself is used only
by a synchronous caller, the assistant's `blocklearn.client`.
"""

from __future__ import annotations

from typing import Any

import kubernetes


def configuration(kubeconfig: str | None = None) -> Any:
    """In-cluster config when running in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    config = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=config
        )
    return config


def api_client(kubeconfig: str | None = None) -> Any:
    """The official (synchronous) client, for `blocklearn.client`."""
    return kubernetes.client.ApiClient(configuration(kubeconfig))
