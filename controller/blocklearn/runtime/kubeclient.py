"""Calls to the Blocklearn resources through the official Kubernetes client, off the event loop."""

from __future__ import annotations

import asyncio
import builtins
import errno
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from blocklearn import GROUP, VERSION
from blocklearn.runtime.retry import root_cause

Obj = dict[str, Any]


def api_client(kubeconfig: str | None = None) -> Any:
    """In-cluster config when running in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    if kubeconfig is not None and not os.path.isfile(kubeconfig):
        raise FileNotFoundError(errno.ENOENT, "no such kubeconfig file", kubeconfig)
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    return kubernetes.client.ApiClient(configuration)


def describe_error(exc: BaseException) -> str | None:
    """One line for a person about a failure of the official client that their setup causes (no
    kubeconfig, an API server not reachable, a refusal); None for anything else."""
    if isinstance(exc, kubernetes.config.ConfigException):
        return f"no Kubernetes configuration ({exc}): set KUBECONFIG (blocklearn dev prints it)"
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        where = f"{exc.pool.scheme}://{exc.pool.host}:{exc.pool.port}" if exc.pool is not None else "?"
        why = root_cause(exc)
        return f"cannot reach the Kubernetes API at {where} ({why}): is it running, is KUBECONFIG right?"
    if isinstance(exc, ApiException):
        try:
            message = json.loads(exc.body or "")["message"]
        except (TypeError, ValueError, KeyError):
            message = exc.reason
        hint = " (are the CRDs installed? kubectl apply --server-side -f crds/)" if exc.status == 404 else ""
        return f"the Kubernetes API answered {exc.status}: {message}{hint}"
    return None


class CustomObjects:
    """Namespaced custom objects of the blocklearn.dev group; every call runs in a worker thread."""

    def __init__(self, client: Any) -> None:
        self.client = client
        # Typed as Any: the generated client declares `object` for every custom-object answer.
        self._api: Any = kubernetes.client.CustomObjectsApi(client)

    async def get(self, plural: str, namespace: str, name: str) -> Obj | None:
        try:
            obj = await asyncio.to_thread(
                self._api.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
            )
            return cast(Obj, obj)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, plural: str, namespace: str, body: Obj) -> Obj:
        return await asyncio.to_thread(
            self._api.create_namespaced_custom_object, GROUP, VERSION, namespace, plural, body
        )

    async def patch(self, plural: str, namespace: str, name: str, body: Obj) -> Obj:
        return await asyncio.to_thread(
            self._api.patch_namespaced_custom_object, GROUP, VERSION, namespace, plural, name, body
        )

    async def patch_status(self, plural: str, namespace: str, name: str, status: Obj) -> Obj:
        return await asyncio.to_thread(
            self._api.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            {"status": status},
        )

    async def delete(self, plural: str, namespace: str, name: str) -> bool:
        """Delete; False when it was already gone."""
        try:
            await asyncio.to_thread(
                self._api.delete_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
            )
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    def list_sync(self, plural: str, namespace: str | None = None, **kwargs: Any) -> Obj:
        if namespace:
            result: Obj = self._api.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **kwargs)
        else:
            result = self._api.list_cluster_custom_object(GROUP, VERSION, plural, **kwargs)
        return result

    async def list(self, plural: str, namespace: str | None = None) -> Obj:
        return await asyncio.to_thread(self.list_sync, plural, namespace)

    async def pages(
        self, plural: str, namespace: str | None = None, limit: int = 200
    ) -> AsyncIterator[builtins.list[Obj]]:
        """List in chunks (limit/continue): memory stays bounded by one page, however many objects."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": limit}
            if token:
                kwargs["_continue"] = token
            result = await asyncio.to_thread(self.list_sync, plural, namespace, **kwargs)
            yield builtins.list(result.get("items", []))
            token = result.get("metadata", {}).get("continue")
            if not token:
                return


def token_review(client: Any, timeout: float = 10) -> Callable[[Obj], Awaitable[Obj]]:
    """POST a TokenReview spec; returns the review's status (authenticated, user, audiences, error)."""
    api = kubernetes.client.AuthenticationV1Api(client)

    async def review(spec: Obj) -> Obj:
        body = kubernetes.client.V1TokenReview(
            api_version="authentication.k8s.io/v1",
            kind="TokenReview",
            spec=kubernetes.client.V1TokenReviewSpec(token=spec["token"], audiences=spec.get("audiences")),
        )
        answer = await asyncio.to_thread(api.create_token_review, body, _request_timeout=timeout)
        return cast(Obj, client.sanitize_for_serialization(answer.status) or {})

    return review
