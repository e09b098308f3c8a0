"""The resource types the emulator serves: the built-in ones it needs, and those of the CRDs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from blocklearn.devtools.emulator.quota import usage_column

Obj = dict[str, Any]

AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool = True
    shortnames: list[str] = field(default_factory=list)
    status_subresource: bool = False
    schema: dict[str, Any] | None = None
    printer_columns: list[dict[str, Any]] = field(default_factory=list)
    # A built-in kind (kubectl may send it as protobuf); custom resources are JSON only.
    builtin: bool = True

    @property
    def key(self) -> str:
        return f"{self.group}/{self.version}/{self.plural}"

    @property
    def qualified(self) -> str:
        """As the API server names it in messages: `blocks.blocklearn.dev`, `serviceaccounts`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """`Block.blocklearn.dev`, `Namespace`: the kind in an Invalid message."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @classmethod
    def from_crd(cls, crd: Obj) -> list[ResourceType]:
        spec = crd["spec"]
        names_ = spec["names"]
        return [
            cls(
                group=spec["group"],
                version=v["name"],
                plural=names_["plural"],
                kind=names_["kind"],
                singular=names_.get("singular", names_["kind"].lower()),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                shortnames=list(names_.get("shortNames", [])),
                status_subresource="status" in v.get("subresources", {}),
                schema=v.get("schema", {}).get("openAPIV3Schema"),
                printer_columns=list(v.get("additionalPrinterColumns", [])),
                builtin=False,
            )
            for v in spec["versions"]
            if v.get("served", True)
        ]


# Core resources besides our own: kopf posts Events, and waits for namespaces and CRDs to be
# discoverable before it starts watching anything (even cluster-wide, where it never lists them).
CORE_TYPES = [
    ResourceType("", "v1", "events", "Event", "event", shortnames=["ev"]),
    ResourceType(
        "",
        "v1",
        "namespaces",
        "Namespace",
        "namespace",
        namespaced=False,
        shortnames=["ns"],
        status_subresource=True,
        printer_columns=[{"name": "Status", "type": "string", "jsonPath": ".status.phase"}, AGE_COLUMN],
    ),
    # ServiceAccounts and their tokens, and TokenReview: the index checks bearer tokens with it.
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", "serviceaccount", shortnames=["sa"]),
    ResourceType(
        "",
        "v1",
        "resourcequotas",
        "ResourceQuota",
        "resourcequota",
        shortnames=["quota"],
        status_subresource=True,
        printer_columns=[
            AGE_COLUMN,
            {"name": "Request", "type": "string", "value": lambda q: usage_column(q, limits=False)},
            {"name": "Limit", "type": "string", "value": lambda q: usage_column(q, limits=True)},
        ],
    ),
    ResourceType(
        "authentication.k8s.io", "v1", "tokenreviews", "TokenReview", "tokenreview", namespaced=False
    ),
    # Leases, for the controllers' leader election: create once (409 AlreadyExists for the loser),
    # then PUT with the resourceVersion read (409 Conflict when someone wrote in between).
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", "lease"),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        "customresourcedefinition",
        namespaced=False,
        shortnames=["crd", "crds"],
    ),
]
