"""The local Kubernetes API: kmock's KubernetesEmulator, filled in where the controller relies on it.

kmock 0.8 serves discovery and keeps objects as plain JSON; it gives them no uid, resourceVersion,
generation or creationTimestamp, lists carry no kind, patches touch status and spec alike, watches
cannot resume, and owners do not take their dependents with them. This subclass keeps kmock's HTTP
server, request parsing, discovery and reaction DSL (tests inject faults with it:
`emulator[kmock.action.UPDATE] << 500` answers before any state changes) and replaces the object
store with one that has the semantics the operator depends on:

- metadata: uid, resourceVersion (one counter for all objects), generation bumped on spec changes
  only, creationTimestamp;
- the status subresource: the main endpoint ignores `status`, `/status` changes only `status`;
- optimistic concurrency: a write with a stale `metadata.resourceVersion` gets 409 Conflict;
- CRD structural schemas from `crds/`: unknown fields pruned, wrong types and sizes over maxLength
  or maxItems rejected with 422;
- the size limits: a body over 3 MiB gets 413, annotations over 256 KiB 422, an object over etcd's
  1.5 MiB the 500 that etcd's refusal becomes;
- watches that resume from a resourceVersion, and `410 Gone` once that version was compacted away;
- finalizers, and the garbage collection of dependents through ownerReferences;
- list kinds, label selectors, and kubectl's Table format with the CRD's printer columns.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import copy
import datetime
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal.rendering import Response  # not re-exported by kmock 0.8

from blocklearn.devtools.emulator import openapi_v2, protobuf
from blocklearn.devtools.emulator import schema as structural
from blocklearn.devtools.emulator.tables import render_table
from blocklearn.devtools.emulator.tokens import TokenIssuer

Obj = dict[str, Any]
Key = tuple[str, str | None, str]  # (group/version/plural, namespace, name)

log = logging.getLogger("blocklearn.devtools.emulator")

# How many watch events are kept for resuming watches; older versions get 410 Gone.
EVENT_LOG_SIZE = 50_000
# The limits of a default kube-apiserver and etcd: a request body (apiserver's MaxRequestBodyBytes),
# an object's annotations (TotalAnnotationSizeLimitB), and a stored value (etcd's --max-request-bytes).
MAX_REQUEST_BYTES = 3 * 1024 * 1024
MAX_ANNOTATION_BYTES = 256 * 1024
MAX_STORED_BYTES = 1536 * 1024


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

    @property
    def key(self) -> str:
        return f"{self.group}/{self.version}/{self.plural}"

    @property
    def qualified(self) -> str:
        """As the API server names it in messages: `blocks.blocklearn.dev`, `serviceaccounts`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @classmethod
    def from_crd(cls, crd: Obj) -> list[ResourceType]:
        spec = crd["spec"]
        names = spec["names"]
        return [
            cls(
                group=spec["group"],
                version=v["name"],
                plural=names["plural"],
                kind=names["kind"],
                singular=names.get("singular", names["kind"].lower()),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                shortnames=list(names.get("shortNames", [])),
                status_subresource="status" in v.get("subresources", {}),
                schema=v.get("schema", {}).get("openAPIV3Schema"),
                printer_columns=list(v.get("additionalPrinterColumns", [])),
            )
            for v in spec["versions"]
            if v.get("served", True)
        ]


# Core resources besides our own: kopf posts Events, and waits for namespaces and CRDs to be
# discoverable before it starts watching anything (even cluster-wide, where it never lists them).
CORE_TYPES = [
    ResourceType("", "v1", "events", "Event", "event"),
    ResourceType("", "v1", "namespaces", "Namespace", "namespace", namespaced=False, shortnames=["ns"]),
    # ServiceAccounts and their tokens, and TokenReview: the index checks bearer tokens with it.
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", "serviceaccount", shortnames=["sa"]),
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


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _selector_matches(selector: str | None, labels: dict[str, str]) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.strip().startswith("!"):
            if term.strip()[1:] in labels:
                return False
        elif term.strip() not in labels:
            return False
    return True


def _fields_match(selector: str | None, obj: Obj) -> bool:
    """Field selectors as `kubectl describe` sends them: `involvedObject.name=x,metadata.namespace=y`."""
    if not selector:
        return True
    for term in selector.split(","):
        negate = "!=" in term
        path, _, want = term.replace("!=", "=").replace("==", "=").partition("=")
        value: Any = obj
        for part in path.strip().split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if (str(value if value is not None else "") == want.strip()) == negate:
            return False
    return True


def _status(code: int, reason: str, message: str, **details: Any) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=code, reason=reason, message=message, details=details or {})


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    """A Kubernetes API for the operator's own resources, with the semantics kopf and kubectl need."""

    _types: dict[str, ResourceType] = attrs.field(factory=dict, init=False)
    _store: dict[Key, Obj] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=0, init=False)
    # The event log, ordered by resourceVersion (one version per event), for resuming watches.
    _log: list[tuple[str, Obj]] = attrs.field(factory=list, init=False)
    _log_rvs: list[int] = attrs.field(factory=list, init=False)
    _compacted_rv: int = attrs.field(default=0, init=False)
    # Replaced on every event: watchers wait on the one they saw last, so no wake-up is missed.
    _tick: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    _watch_epoch: int = attrs.field(default=0, init=False)
    _builtin_reactions: int = attrs.field(default=0, init=False)
    _list_cache: dict[tuple[Any, ...], tuple[int, list[Obj]]] = attrs.field(factory=dict, init=False)
    # Fault injection for long runs: called for every request before anything is written; it may
    # sleep (a slow server) and returns an HTTP status to fail with, or None. Unlike kmock reactions,
    # whose matching scans the request history, it costs O(1) per request.
    fault: Callable[[kmock.Request], Awaitable[int | None]] | None = attrs.field(default=None, init=False)
    # Told of every change as it is made, before the client's answer: the journal keeps state with it.
    on_change: Callable[[Key, str, Obj], None] | None = attrs.field(default=None, init=False)
    # How many times each object was created: a test of "nothing duplicated" counts on it.
    creations: collections.Counter[str] = attrs.field(factory=collections.Counter, init=False)
    # Every (verb, group, resource[/subresource], client) used: the chart's RBAC is tested against it.
    # The client is the User-Agent's product (kopf, OpenAPI-Generator, Python...).
    calls: set[tuple[str, str, str, str]] = attrs.field(factory=set, init=False)
    tokens: TokenIssuer = attrs.field(factory=TokenIssuer, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.fallback[kmock.method.PUT] << self._serve_replace
        # kubectl validates `apply` against the OpenAPI v3 documents and reads them for `explain`.
        self.fallback["get", re.compile(r"/openapi/v3/?")] << self._serve_openapi_index
        self.fallback["get", re.compile(r"/openapi/v3/.+")] << self._serve_openapi_group
        self.fallback["get", re.compile(r"/openapi/v2/?")] << self._serve_openapi_v2
        # A POST to a named object is no action kmock knows: the TokenRequest subresource is one.
        self.fallback["post", re.compile(r"/api/v1/namespaces/[^/]+/serviceaccounts/[^/]+/token")] << (
            self._serve_create
        )
        for rtype in CORE_TYPES:
            self.register(rtype)
        self._builtin_reactions = len(self._payloads)

    # -- setup -------------------------------------------------------------------------------------

    def register(self, rtype: ResourceType) -> None:
        self._types[rtype.key] = rtype
        self.resources[rtype.key] = kmock.ResourceInfo(
            kind=rtype.kind,
            singular=rtype.singular,
            namespaced=rtype.namespaced,
            shortnames=set(rtype.shortnames),
            verbs={"create", "delete", "get", "list", "patch", "update", "watch"},
            subresources={"status"} if rtype.status_subresource else set(),
        )

    def register_crds(self, crds: Iterable[Obj]) -> None:
        crd_type = self._types["apiextensions.k8s.io/v1/customresourcedefinitions"]
        for crd in crds:
            for rtype in ResourceType.from_crd(crd):
                self.register(rtype)
            stored = copy.deepcopy(crd)
            stored["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
            stored["metadata"]["resourceVersion"] = self._bump()
            self._store[(crd_type.key, None, crd["metadata"]["name"])] = stored

    # -- discovery ---------------------------------------------------------------------------------

    async def _serve_version(self, request: kmock.Request) -> Any:
        """APIResourceList as the real server writes it: subresources carry no short names."""
        res = request.resource
        group = res.group if res is not None else ""
        version = res.version if res is not None else ""
        types = [t for t in self._types.values() if t.group == group and t.version == version]
        if not types and group != "":
            raise kmock.KubernetesResourceNotFoundError()
        resources: list[Obj] = []
        for t in types:
            base = {"singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind}
            verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
            resources.append(
                {
                    "name": t.plural,
                    **base,
                    "shortNames": t.shortnames,
                    "verbs": verbs,
                    "categories": ["blocklearn"] if t.group == "blocklearn.dev" else [],
                }
            )
            if t.status_subresource:
                resources.append(
                    {
                        "name": f"{t.plural}/status",
                        **base,
                        "singularName": "",
                        "verbs": ["get", "patch", "update"],
                    }
                )
        return {
            "apiVersion": "v1",
            "kind": "APIResourceList",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    def _openapi_gvs(self) -> dict[str, list[ResourceType]]:
        gvs: dict[str, list[ResourceType]] = {}
        for t in self._types.values():
            if t.schema is not None:
                gvs.setdefault(f"apis/{t.group}/{t.version}", []).append(t)
        return gvs

    async def _serve_openapi_index(self, request: kmock.Request) -> Any:
        return {
            "paths": {
                gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={self._rv}"} for gv in self._openapi_gvs()
            }
        }

    def _openapi_schemas(self, types: Iterable[ResourceType]) -> Obj:
        schemas: Obj = {}
        for t in types:
            schema = copy.deepcopy(t.schema or {})
            schema["properties"]["metadata"] = {
                "type": "object",
                "description": "Standard object metadata.",
                "x-kubernetes-preserve-unknown-fields": True,
            }
            schema["x-kubernetes-group-version-kind"] = [
                {"group": t.group, "version": t.version, "kind": t.kind}
            ]
            name = ".".join(reversed(t.group.split("."))) + f".{t.version}.{t.kind}"
            schemas[name] = schema
        return schemas

    async def _serve_openapi_v2(self, request: kmock.Request) -> Any:
        types = [t for ts in self._openapi_gvs().values() for t in ts]
        doc = {
            "swagger": "2.0",
            "info": {"title": "Blocklearn local Kubernetes API", "version": "v1"},
            "paths": {},
            "definitions": self._openapi_schemas(types),
        }
        if "protobuf" in request.headers.get("Accept", ""):
            # kubectl parses the answer as protobuf whatever its type: JSON here made it fail with
            # "proto: cannot parse invalid wire-format data" (kubectl apply -f of a kind: List).
            headers = {"Content-Type": openapi_v2.MEDIA_TYPE}
            return Response(status=200, payload=openapi_v2.document(doc), headers=headers)
        return doc

    async def _serve_openapi_group(self, request: kmock.Request) -> Any:
        gv = request.url.path.removeprefix("/openapi/v3/")
        types = self._openapi_gvs().get(gv)
        if types is None:
            raise _status(404, "NotFound", f"no OpenAPI document for {gv}")
        schemas = self._openapi_schemas(types)
        # kubectl looks for a PATCH that takes fieldValidation: then it leaves validation to the
        # server (fieldValidation=Strict) instead of downloading the protobuf OpenAPI v2 document.
        paths: Obj = {}
        for t in types:
            gvk = {"group": t.group, "version": t.version, "kind": t.kind}
            ops = {
                verb: {
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "OK"}},
                }
                for verb in ("patch", "put")
            }
            prefix = (
                f"/apis/{t.group}/{t.version}/namespaces/{{namespace}}" if t.namespaced else f"/apis/{gv[5:]}"
            )
            paths[f"{prefix}/{t.plural}/{{name}}"] = ops
        return {
            "openapi": "3.0.0",
            "info": {"title": "Blocklearn local Kubernetes API", "version": "v1"},
            "paths": paths,
            "components": {"schemas": schemas},
        }

    # -- direct access, for tests and persistence --------------------------------------------------

    def objects_of(self, plural_key: str, namespace: str | None = None) -> list[Obj]:
        return [
            copy.deepcopy(o)
            for (k, ns, _), o in sorted(self._store.items(), key=lambda kv: str(kv[0]))
            if k == plural_key and (namespace is None or ns == namespace)
        ]

    def snapshot(self) -> dict[str, Any]:
        return {"resourceVersion": self._rv, "objects": [[list(k), o] for k, o in self._store.items()]}

    def restore(self, data: dict[str, Any]) -> None:
        self._rv = int(data["resourceVersion"])
        self._compacted_rv = self._rv  # a watch from before the restart must relist
        for key, obj in data["objects"]:
            self._store[(key[0], key[1], key[2])] = obj

    def compact(self, keep: int = 0) -> None:
        """Forget all but `keep` events, like etcd compaction: resuming older watches gets 410 Gone."""
        drop = max(0, len(self._log) - keep)
        if drop:
            self._compacted_rv = self._log_rvs[drop - 1]
            del self._log[:drop], self._log_rvs[:drop]
        if not keep:
            self._compacted_rv = self._rv

    def drop_watches(self) -> None:
        """End every open watch stream, as a restarting API server or a broken proxy would."""
        self._watch_epoch += 1
        self._tick.set()
        self._tick = asyncio.Event()

    # -- request plumbing --------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if raw_request.can_read_body:
            # As kube-apiserver: a body over the limit is refused before it is decoded.
            body = bytearray()
            while len(body) <= MAX_REQUEST_BYTES and (chunk := await raw_request.content.read(1 << 20)):
                body += chunk
            if len(body) > MAX_REQUEST_BYTES:
                status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 413}
                status |= {
                    "reason": "RequestEntityTooLarge",
                    "message": f"Request entity too large: limit is {MAX_REQUEST_BYTES}",
                }
                return aiohttp.web.json_response(status, status=413)
            raw_request._read_bytes = bytes(body)  # aiohttp's cached body, read once
        if "protobuf" in raw_request.headers.get("Content-Type", ""):
            # kubectl sends built-in kinds (a ServiceAccount, a TokenRequest) as protobuf, which
            # kmock cannot parse: hand it the same object as JSON, as the real server would read it.
            try:
                obj = protobuf.decode(await raw_request.read())
            except protobuf.ProtobufError as exc:
                status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 415}
                status |= {"reason": "UnsupportedMediaType", "message": str(exc)}
                return aiohttp.web.json_response(status, status=415)
            raw_request._read_bytes = json.dumps(obj).encode()  # aiohttp's cached body
        return await super().__call__(raw_request)

    async def _handle(self, request: kmock.Request) -> Any:
        log.debug("Served request: method=%s url=%s", request.method, request.url)
        self._record_call(request)
        if self.fault is not None and request.resource is not None and request.resource.plural:
            status = await self.fault(request)
            if status is not None:
                raise _status(status, "InjectedFault", f"injected fault {status}")
        # kmock matches a request against a reaction by filtering the whole request history, so
        # each request costs O(history): fine for a short test, fatal for a long-running server.
        # With no reactions added by a test, our own verbs are served directly and the history
        # is kept short; once a test adds reactions (to inject faults), kmock matches as usual.
        if len(self._payloads) == self._builtin_reactions:
            self._trim_history()
            handler = self._direct_handler(request)
            if handler is not None:
                return await Response(payload=handler)(request)
        # Skip KubernetesEmulator._handle: it changes state before reactions run, so an injected
        # 500 would still have written. Here state changes only inside the fallback handlers below.
        return await kmock.KubernetesScaffold._handle(self, request)

    def _record_call(self, request: kmock.Request) -> None:
        res = request.resource
        if res is None or not res.plural:
            return
        verb = (
            "update"
            if request.method == kmock.method.PUT
            else "create"
            if request.method == kmock.method.POST
            else {
                kmock.action.LIST: "list",
                kmock.action.WATCH: "watch",
                kmock.action.FETCH: "get",
                kmock.action.UPDATE: "patch",
                kmock.action.DELETE: "delete",
            }.get(request.action)
            if request.action is not None
            else None
        )
        if verb is not None:
            name = f"{res.plural}/{request.subresource}" if request.subresource else str(res.plural)
            agent = request.headers.get("User-Agent", "").split("/")[0]
            self.calls.add((verb, str(res.group), name, agent))

    def _direct_handler(self, request: kmock.Request) -> Any:
        if request.resource is None or not request.resource.plural or request.action is None:
            return None  # discovery (/apis/group/version parses as a list of nothing) and non-K8s paths
        if request.method == kmock.method.PUT and request.name:
            return self._serve_replace
        if request.method == kmock.method.POST and request.subresource == "token":
            return self._serve_create
        return {
            kmock.action.LIST: self._serve_list,
            kmock.action.WATCH: self._serve_watch,
            kmock.action.FETCH: self._serve_fetch,
            kmock.action.CREATE: self._serve_create,
            kmock.action.UPDATE: self._serve_update,
            kmock.action.DELETE: self._serve_delete,
        }.get(request.action)

    def _trim_history(self, keep: int = 100) -> None:
        if len(self._requests) > 10 * keep:
            del self._requests[:-keep]
            for payload in self._payloads:
                if len(payload._requests) > keep:
                    del payload._requests[:-keep]

    def _rtype(self, request: kmock.Request) -> ResourceType:
        res = request.resource
        key = f"{res.group}/{res.version}/{res.plural}" if res is not None else ""
        if key not in self._types:
            raise kmock.KubernetesResourceNotFoundError()
        return self._types[key]

    def _bump(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _emit(self, rtype: ResourceType, type_: str, obj: Obj) -> None:
        if self.on_change is not None:
            self.on_change((rtype.key, obj["metadata"].get("namespace"), obj["metadata"]["name"]), type_, obj)
        self._log.append((rtype.key, {"type": type_, "object": copy.deepcopy(obj)}))
        self._log_rvs.append(self._rv)
        if len(self._log) > EVENT_LOG_SIZE:
            self.compact(keep=EVENT_LOG_SIZE // 2)
        self._tick.set()
        self._tick = asyncio.Event()

    def _validate(self, rtype: ResourceType, obj: Obj, strict: bool = False) -> Obj:
        if rtype.schema is None:
            return obj
        meta = obj.get("metadata", {})
        body = {k: v for k, v in obj.items() if k != "metadata"}
        pruned, errors = structural.prune_and_validate(rtype.schema, body, strict=strict)
        if errors:
            name = meta.get("name", "")
            # kubectl prints `causes`, one line per field, after "The Block "x" is invalid".
            causes = []
            for err in errors[:20]:
                field, _, message = err.partition(": ")
                if not message:
                    field, message = "", err
                causes.append({"reason": "FieldValueInvalid", "message": message, "field": field.lstrip(".")})
            raise _status(
                422,
                "Invalid",
                f'{rtype.kind}.{rtype.group} "{name}" is invalid: ' + "; ".join(errors[:20]),
                name=name,
                group=rtype.group,
                kind=rtype.kind,
                causes=causes,
            )
        return {**pruned, "metadata": meta, "apiVersion": obj.get("apiVersion"), "kind": obj.get("kind")}

    def _check_limits(self, rtype: ResourceType, obj: Obj) -> None:
        """The API server's limits on what it stores: annotations, then the whole value in etcd."""
        meta = obj.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        size = sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())
        if size > MAX_ANNOTATION_BYTES:
            name = meta.get("name", "")
            message = f"Too long: must have at most {MAX_ANNOTATION_BYTES} bytes"
            raise _status(
                422,
                "Invalid",
                f'{rtype.kind}.{rtype.group} "{name}" is invalid: metadata.annotations: {message}',
                name=name,
                group=rtype.group,
                kind=rtype.kind,
                causes=[{"reason": "FieldValueTooLong", "message": message, "field": "metadata.annotations"}],
            )
        if stored_size(obj) > MAX_STORED_BYTES:
            # etcd refuses it and the API server passes the refusal on as an internal error
            # (kubernetes/kubernetes#112152): a write that can never succeed, however often retried.
            raise _status(500, "InternalError", "etcdserver: request is too large")

    # -- verbs -------------------------------------------------------------------------------------

    async def _serve_fetch(self, request: kmock.Request) -> Any:
        return self._existing(request)[2]

    def _existing(self, request: kmock.Request) -> tuple[ResourceType, Key, Obj]:
        """The addressed object, or a Kubernetes 404."""
        rtype = self._rtype(request)
        key = (rtype.key, request.namespace, request.name or "")
        current = self._store.get(key)
        if current is None:
            raise _status(404, "NotFound", f'{rtype.qualified} "{request.name}" not found')
        return rtype, key, current

    async def _serve_list(self, request: kmock.Request) -> Any:
        rtype = self._rtype(request)
        selector = request.params.get("labelSelector")
        fields = request.params.get("fieldSelector")
        # Pages of one list reuse its sorted result while nothing is written: without this, each page
        # of 100k objects rescanned and resorted them all.
        cache_key = (rtype.key, request.namespace, selector, fields)
        if any(rv != self._rv for rv, _ in self._list_cache.values()):
            self._list_cache = {}  # something was written: every cached list is stale
        cached = self._list_cache.get(cache_key)
        if cached is not None:
            items = cached[1]
        else:
            items = [
                o
                for (k, ns, _), o in self._store.items()
                if k == rtype.key and (request.namespace is None or ns == request.namespace)
                if _selector_matches(selector, o["metadata"].get("labels", {})) and _fields_match(fields, o)
            ]
            items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
            self._list_cache[cache_key] = (self._rv, items)
        # Chunked lists (limit/continue), as clients page through large collections. The token is
        # the offset: simpler than the real server's snapshot, and enough for sorted, rarely
        # changing test data.
        start = int(request.params.get("continue") or 0)
        limit = int(request.params.get("limit") or 0)
        page = items[start : start + limit] if limit else items[start:]
        meta: Obj = {"resourceVersion": str(self._rv)}
        if limit and start + limit < len(items):
            meta["continue"] = str(start + limit)
            meta["remainingItemCount"] = len(items) - start - limit
        if "as=Table" in request.headers.get("Accept", ""):
            table = render_table(rtype.printer_columns, page, str(self._rv))
            table["metadata"] = meta
            return table
        return {"apiVersion": rtype.api_version, "kind": f"{rtype.kind}List", "metadata": meta, "items": page}

    async def _serve_create(self, request: kmock.Request) -> Any:
        rtype = self._rtype(request)
        obj = request.data
        if not isinstance(obj, dict):
            raise _status(400, "BadRequest", "the request body is not a JSON object")
        if rtype.plural == "serviceaccounts" and request.subresource == "token":
            _, _, account = self._existing(request)
            return Response(
                status=201,
                payload=self.tokens.request(account["metadata"]["namespace"], account, obj.get("spec") or {}),
            )
        if rtype.key == "authentication.k8s.io/v1/tokenreviews":
            return Response(status=201, payload=self.tokens.review(obj.get("spec") or {}, self._account_uid))
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise _status(422, "Invalid", "metadata.name: Required value")
        if rtype.namespaced:
            meta["namespace"] = request.namespace or meta.get("namespace") or "default"
        key = (rtype.key, meta.get("namespace"), name)
        if key in self._store:
            raise _status(409, "AlreadyExists", f'{rtype.qualified} "{name}" already exists')
        if rtype.status_subresource:
            obj.pop("status", None)
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        obj = self._validate(rtype, obj, _strict(request))
        self._check_limits(rtype, obj)
        meta = obj["metadata"]
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        meta.pop("deletionTimestamp", None)
        meta["resourceVersion"] = self._bump()
        self._store[key] = obj
        self.creations[f"{rtype.plural}/{key[1]}/{name}"] += 1
        self._emit(rtype, "ADDED", obj)
        return Response(status=201, payload=obj)

    def _account_uid(self, namespace: str, name: str) -> str | None:
        account = self._store.get(("/v1/serviceaccounts", namespace, name))
        return account["metadata"]["uid"] if account is not None else None

    async def _serve_update(self, request: kmock.Request) -> Any:
        """PATCH: JSON merge patch (kopf, kubectl apply for custom resources) or JSON patch."""
        rtype, key, current = self._existing(request)
        patch = request.data
        ctype = request.headers.get("Content-Type", "")
        if "json-patch" in ctype:
            desired = _apply_json_patch(current, patch)
        elif isinstance(patch, dict):
            precondition = (patch.get("metadata") or {}).get("resourceVersion")
            if precondition and precondition != current["metadata"]["resourceVersion"]:
                raise self._conflict(rtype, request.name)
            desired = merge_patch(current, patch)
        else:
            raise _status(400, "BadRequest", "the patch is not a JSON object")
        return self._write(rtype, key, current, desired, request.subresource, _strict(request))

    async def _serve_replace(self, request: kmock.Request) -> Any:
        """PUT: replace the object, guarded by its resourceVersion."""
        rtype, key, current = self._existing(request)
        desired = request.data
        if not isinstance(desired, dict):
            raise _status(400, "BadRequest", "the request body is not a JSON object")
        given = (desired.get("metadata") or {}).get("resourceVersion")
        if not given:
            raise _status(422, "Invalid", "metadata.resourceVersion: must be specified for an update")
        if given != current["metadata"]["resourceVersion"]:
            raise self._conflict(rtype, request.name)
        return self._write(rtype, key, current, copy.deepcopy(desired), request.subresource, _strict(request))

    def _conflict(self, rtype: ResourceType, name: str | None) -> kmock.KubernetesError:
        return _status(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {rtype.qualified} "{name}": '
            "the object has been modified; please apply your changes to the latest version and try again",
        )

    def _write(
        self, rtype: ResourceType, key: Key, current: Obj, desired: Obj, sub: str | None, strict: bool = False
    ) -> Any:
        if rtype.status_subresource and sub == "status":
            desired = {**current, "status": desired.get("status")}
            if desired["status"] is None:
                desired.pop("status")
        elif rtype.status_subresource:
            desired = {k: v for k, v in desired.items() if k != "status"}
            if "status" in current:
                desired["status"] = current["status"]
        # Identity and server-owned fields are not the client's to change.
        meta = dict(desired.get("metadata") or {})
        for owned in ("uid", "creationTimestamp", "generation", "resourceVersion", "name", "namespace"):
            if owned in current["metadata"]:
                meta[owned] = current["metadata"][owned]
        if "deletionTimestamp" in current["metadata"]:
            meta["deletionTimestamp"] = current["metadata"]["deletionTimestamp"]
        desired["metadata"] = meta
        desired["apiVersion"], desired["kind"] = rtype.api_version, rtype.kind
        desired = self._validate(rtype, desired, strict)
        if desired == current:
            return current  # a no-op write changes nothing, not even the resourceVersion
        if _spec_of(desired) != _spec_of(current):
            desired["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        self._check_limits(rtype, desired)
        desired["metadata"]["resourceVersion"] = self._bump()
        if desired["metadata"].get("deletionTimestamp") and not desired["metadata"].get("finalizers"):
            return self._remove(rtype, key, desired)
        self._store[key] = desired
        self._emit(rtype, "MODIFIED", desired)
        return desired

    async def _serve_delete(self, request: kmock.Request) -> Any:
        rtype, key, current = self._existing(request)
        options = request.data if isinstance(request.data, dict) else {}
        preconditions = options.get("preconditions") or {}
        for field_, given in (
            ("UID", preconditions.get("uid")),
            ("ResourceVersion", preconditions.get("resourceVersion")),
        ):
            actual = current["metadata"]["uid" if field_ == "UID" else "resourceVersion"]
            if given and given != actual:
                raise _status(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {rtype.qualified} "{request.name}": '
                    f"Precondition failed: {field_} in precondition: {given}, "
                    f"{field_} in object meta: {actual}",
                )
        orphan = (options.get("propagationPolicy") or request.params.get("propagationPolicy")) == "Orphan"
        if current["metadata"].get("finalizers"):
            if not current["metadata"].get("deletionTimestamp"):
                current = copy.deepcopy(current)
                current["metadata"]["deletionTimestamp"] = _now()
                current["metadata"]["resourceVersion"] = self._bump()
                self._store[key] = current
                self._emit(rtype, "MODIFIED", current)
            return current
        return self._remove(rtype, key, current, orphan=orphan)

    def _remove(self, rtype: ResourceType, key: Key, obj: Obj, orphan: bool = False) -> Obj:
        self._store.pop(key, None)
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = self._bump()
        self._emit(rtype, "DELETED", obj)
        if not orphan:
            self._collect_dependents(obj["metadata"]["uid"])
        return obj

    def _collect_dependents(self, owner_uid: str) -> None:
        """Background garbage collection: delete what the removed object owned."""
        for dkey, dependent in list(self._store.items()):
            owners = dependent["metadata"].get("ownerReferences") or []
            if any(ref.get("uid") == owner_uid for ref in owners):
                rtype = self._types[dkey[0]]
                if dependent["metadata"].get("finalizers"):
                    dependent = copy.deepcopy(dependent)
                    dependent["metadata"]["deletionTimestamp"] = _now()
                    dependent["metadata"]["resourceVersion"] = self._bump()
                    self._store[dkey] = dependent
                    self._emit(rtype, "MODIFIED", dependent)
                else:
                    self._remove(rtype, dkey, dependent)

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:  # type: ignore[override]
        # A coroutine that returns a stream, so that an unknown resource is a plain 404 response.
        rtype = self._rtype(request)
        since = request.params.get("resourceVersion") or ""
        if since not in ("", "0") and (not since.isdigit() or int(since) < self._compacted_rv):
            return self._gone(since)
        return self._watch(rtype, request, since)

    async def _gone(self, since: str) -> AsyncIterator[Any]:
        yield {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "code": 410,
                "reason": "Expired",
                "message": f"too old resource version: {since} ({self._compacted_rv})",
            },
        }

    async def _watch(self, rtype: ResourceType, request: kmock.Request, since: str) -> AsyncIterator[Any]:
        yield b""  # send the headers now, even if nothing happens for a while
        selector = request.params.get("labelSelector")
        timeout = float(request.params.get("timeoutSeconds") or 0) or None
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout

        def visible(obj: Obj) -> bool:
            meta = obj["metadata"]
            return (request.namespace is None or meta.get("namespace") == request.namespace) and (
                _selector_matches(selector, meta.get("labels", {}))
            )

        if since in ("", "0"):
            seen = self._rv
            for (k, _, _), obj in list(self._store.items()):
                if k == rtype.key and visible(obj):
                    yield {"type": "ADDED", "object": obj}
        else:
            seen = int(since)
        epoch = self._watch_epoch
        while True:
            tick = self._tick
            if epoch != self._watch_epoch:
                return
            if seen < self._compacted_rv:
                async for gone in self._gone(str(seen)):
                    yield gone
                return
            start = bisect.bisect_right(self._log_rvs, seen)
            pending = list(zip(self._log_rvs[start:], self._log[start:], strict=True))
            for rv, (key, event) in pending:
                seen = rv
                if key == rtype.key and visible(event["object"]):
                    yield event
            if pending:
                continue  # events may have arrived while this stream was writing
            remaining = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if remaining is not None and remaining <= 0:
                return
            try:
                await asyncio.wait_for(tick.wait(), timeout=remaining)
            except TimeoutError:
                return


def stored_size(obj: Obj) -> int:
    """Bytes of the object as the API server writes it to etcd: compact JSON with Go's escapes, which
    write `<`, `>`, `&` (1 byte each) and U+2028, U+2029 (3 bytes) as 6-byte \\u sequences."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    html = sum(text.count(c) for c in "<>&")
    separators = text.count("\u2028") + text.count("\u2029")
    # A lone surrogate (JSON can carry one) is 3 bytes, as the U+FFFD Go writes in its place.
    return len(text.encode(errors="surrogatepass")) + 5 * html + 3 * separators


def _strict(request: kmock.Request) -> bool:
    return str(request.params.get("fieldValidation", "")).lower() == "strict"


def _spec_of(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


_POINTER_ESCAPE = re.compile(r"~[01]")


def _apply_json_patch(target: Obj, ops: Any) -> Obj:
    """RFC 6902, the operations kubectl and kopf send: add, replace, remove, test."""
    if not isinstance(ops, list):
        raise _status(400, "BadRequest", "a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        parts = [
            _POINTER_ESCAPE.sub(lambda m: "~" if m.group() == "~0" else "/", p)
            for p in str(op.get("path", "")).split("/")[1:]
        ]
        parent: Any = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
        last = parts[-1] if parts else ""
        kind = op.get("op")
        if kind in ("add", "replace"):
            if isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last)
                parent.insert(idx, op["value"]) if kind == "add" else parent.__setitem__(idx, op["value"])
            else:
                parent[last] = op["value"]
        elif kind == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        elif kind == "test":
            actual = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if actual != op.get("value"):
                raise _status(422, "Invalid", f"test operation failed at {op.get('path')}")
        else:
            raise _status(400, "BadRequest", f"unsupported JSON patch operation {kind!r}")
    return doc
