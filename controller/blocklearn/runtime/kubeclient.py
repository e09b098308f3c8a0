"""Credentials for the Kubernetes API: in a pod its ServiceAccount, elsewhere a kubeconfig.

`Rest`, the asyncio client every process uses, sends them. The two common cases are read here: a
pod's mounted token and CA, and a kubeconfig whose user has a token or a client certificate. Any
other kubeconfig (an `exec` plugin such as EKS's or GKE's, an auth provider, several files in
KUBECONFIG) is loaded by the official client's loader. The official client itself is imported only
then, or by a synchronous caller (the assistant's `blocklearn.client`): importing it costs a process
about 37 MB, which the index would otherwise carry for nothing.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import errno
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from blocklearn.runtime.retry import root_cause

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass
class Credentials:
    """Where the API server is and how to authenticate: the attributes of the official client's
    Configuration that `Rest` reads, so either can be given to it."""

    host: str
    verify_ssl: bool = True
    ssl_ca_cert: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None  # read at each call: a pod's projected token is rotated

    def current_token(self) -> str | None:
        return Path(self.token_file).read_text().strip() if self.token_file else self.token

    def auth_settings(self) -> dict[str, dict[str, str]]:
        token = self.current_token()
        if not token:
            return {}
        return {"BearerToken": {"in": "header", "key": "Authorization", "value": f"Bearer {token}"}}


def configuration(kubeconfig: str | None = None) -> Any:
    """In-cluster credentials when running in a pod, else the kubeconfig's (the argument, else the
    KUBECONFIG variable, else ~/.kube/config)."""
    _check_file(kubeconfig)
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if kubeconfig is None and host and port and (SERVICE_ACCOUNT / "token").exists():
        return Credentials(
            host=f"https://{f'[{host}]' if ':' in host else host}:{port}",
            ssl_ca_cert=str(SERVICE_ACCOUNT / "ca.crt"),
            token_file=str(SERVICE_ACCOUNT / "token"),
        )
    path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if os.pathsep not in path:
        credentials = _from_kubeconfig(Path(path))
        if credentials is not None:
            return credentials
    return _official(kubeconfig)


def _from_kubeconfig(path: Path) -> Credentials | None:
    """The current context's cluster and user, when the user holds a token or a certificate; None
    for what only the official loader knows."""
    if not path.is_file():
        return None  # the official loader says what is missing
    config = yaml.safe_load(path.read_text()) or {}
    named = {
        kind: {i["name"]: i.get(kind[:-1]) or {} for i in config.get(kind) or []}
        for kind in ("clusters", "users", "contexts")
    }
    context = named["contexts"].get(config.get("current-context", ""))
    if context is None:
        return None
    cluster = named["clusters"].get(context.get("cluster", ""))
    user = named["users"].get(context.get("user", ""), {})
    if cluster is None or not set(user) <= {
        "token",
        "tokenFile",
        "client-certificate",
        "client-key",
        "client-certificate-data",
        "client-key-data",
    }:
        return None  # exec plugins, auth providers, basic auth: the official loader's
    here = path.parent
    return Credentials(
        host=str(cluster["server"]),
        verify_ssl=not cluster.get("insecure-skip-tls-verify", False),
        ssl_ca_cert=_file(here, cluster, "certificate-authority"),
        cert_file=_file(here, user, "client-certificate"),
        key_file=_file(here, user, "client-key"),
        token=user.get("token"),
        token_file=str(here / user["tokenFile"]) if user.get("tokenFile") else None,
    )


def _file(directory: Path, section: dict[str, Any], key: str) -> str | None:
    """A file the kubeconfig names (relative to it), or one written from its inline `-data`."""
    if section.get(key):
        return str(directory / section[key])
    data = section.get(f"{key}-data")
    if data:
        # One file per distinct value and process (credentials are read more than once), gone at
        # exit: a private key must not pile up in /tmp.
        if data not in _WRITTEN:
            with tempfile.NamedTemporaryFile(prefix="blocklearn-", delete=False) as f:  # mode 0600
                f.write(base64.b64decode(data))
            _WRITTEN[data] = f.name
            atexit.register(_remove, f.name)
        return _WRITTEN[data]
    return None


_WRITTEN: dict[str, str] = {}


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def keep_official_client_out() -> bool:
    """Make `import kubernetes` fail in this process when our own reader understands its
    credentials; whether it did. kopf imports the official client whenever it is installed, only
    to recognise its models in `isinstance` checks: 37 MB a controller would never use."""
    try:
        if not isinstance(configuration(), Credentials):
            return False
    except Exception:  # no kubeconfig yet: the client made later says so, in its own words
        return False
    if "kubernetes" in sys.modules:
        return sys.modules["kubernetes"] is None
    sys.modules["kubernetes"] = None  # type: ignore[assignment]  # Python's way to refuse an import
    return True


def _official(kubeconfig: str | None) -> Any:
    import kubernetes  # 37 MB: only for what the reader above does not handle

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
    import kubernetes

    _check_file(kubeconfig)
    return kubernetes.client.ApiClient(_official(kubeconfig))


def _check_file(kubeconfig: str | None) -> None:
    """A kubeconfig named on the command line must exist: not fall back to another's cluster."""
    if kubeconfig is not None and not os.path.isfile(kubeconfig):
        raise FileNotFoundError(errno.ENOENT, "no such kubeconfig file", kubeconfig)


def describe_error(exc: BaseException) -> str | None:
    """One line for a person about a failure that their setup causes (no kubeconfig, an API server
    not reachable, a refusal), from `Rest` or the official client; None for anything else."""
    from blocklearn.runtime.rest import ApiError, Unreachable  # rest imports this module

    hint = "is it running, is KUBECONFIG right?"
    if isinstance(exc, Unreachable):
        return f"cannot reach the Kubernetes API at {exc.url} ({exc.why}): {hint}"
    if isinstance(exc, ApiError):
        return _answered(exc.status, exc.message or exc.reason)
    if "kubernetes" not in sys.modules:  # not loaded: none of its errors can have happened
        return None
    import kubernetes
    import urllib3

    if isinstance(exc, kubernetes.config.ConfigException):
        return f"no Kubernetes configuration ({exc}): set KUBECONFIG (blocklearn dev prints it)"
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        where = f"{exc.pool.scheme}://{exc.pool.host}:{exc.pool.port}" if exc.pool is not None else "?"
        return f"cannot reach the Kubernetes API at {where} ({root_cause(exc)}): {hint}"
    if isinstance(exc, kubernetes.client.exceptions.ApiException):
        try:
            message = json.loads(exc.body or "")["message"]
        except (TypeError, ValueError, KeyError):
            message = exc.reason
        return _answered(exc.status, message)
    return None


def _answered(status: int, message: str) -> str:
    hint = " (are the CRDs installed? kubectl apply --server-side -f crds/)" if status == 404 else ""
    return f"the Kubernetes API answered {status}: {message}{hint}"
