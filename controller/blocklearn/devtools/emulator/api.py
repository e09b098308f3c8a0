"""The local Kubernetes API: kmock's KubernetesEmulator, filled in where the controller relies on it.

kmock 0.8 serves discovery and keeps objects as plain JSON; it gives them no uid, resourceVersion,
generation or creationTimestamp, lists carry no kind, patches touch status and spec alike, watches
cannot resume, and owners do not take their dependents with them. This subclass keeps kmock's HTTP
server, discovery and reaction DSL (tests inject faults with it: `emulator[kmock.action.UPDATE] << 500`
answers before any state changes) and replaces the request parsing and the object store with ones
that have the semantics the operator depends on, refusing what kube-apiserver refuses with its
status codes, reasons and messages:

- requests: bodies decoded as Go decodes them, 400 for what cannot be, 413 over 3 MiB, 415 for a
  media type the API does not read (wire.py); paths of Namespaces, subresources, 405 for a verb a
  path does not take;
- metadata: uid, resourceVersion (one counter for all objects), generation bumped on spec changes
  only, creationTimestamp; typed as ObjectMeta (objectmeta.py); names DNS-1123 subdomains, namespace
  names DNS-1123 labels (names.py), owner references complete;
- Namespaces: `default`, `kube-system`, `kube-public` and `kube-node-lease` exist; an object in a
  namespace that does not exist is 404, in one being deleted 403; deleting a Namespace deletes
  what is in it (controllers.py);
- the status subresource: the main endpoint ignores `status`, `/status` changes only `status`;
- optimistic concurrency: a write with a stale `metadata.resourceVersion` gets 409 Conflict;
- CRD structural schemas from `crds/`: unknown fields pruned, wrong types and sizes over maxLength
  or maxItems rejected with 422;
- the size limits: annotations over 256 KiB 422, an object over etcd's 1.5 MiB the 500 that etcd's
  refusal becomes (the one 5xx the API server gives for what a client sends);
- watches that resume from a resourceVersion, and `410 Gone` once that version was compacted away;
- finalizers; deletion with `propagationPolicy` Orphan, Background or Foreground and the garbage
  collector behind them (controllers.py);
- object-count ResourceQuota (`count/blocks.blocklearn.dev`): 403 `exceeded quota` (quota.py);
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
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, ClassVar

import aiohttp.web
import attrs
import kmock
from kmock._internal import rendering  # Request internals: not re-exported by kmock 0.8
from kmock._internal.rendering import Response

from blocklearn.devtools.emulator import deletion, names, openapi_v2, quota, statuses, validation, wire
from blocklearn.devtools.emulator import schema as structural
from blocklearn.devtools.emulator.controllers import (
    NAMESPACE_FINALIZER,
    ControllerManager,
)
from blocklearn.devtools.emulator.kinds import AGE_COLUMN, CORE_TYPES, VERBS, ResourceType
from blocklearn.devtools.emulator.patches import apply_json_patch, merge_patch
from blocklearn.devtools.emulator.selectors import fields_match, labels_match
from blocklearn.devtools.emulator.statuses import FieldError, bad_request, status
from blocklearn.devtools.emulator.tables import render_table
from blocklearn.devtools.emulator.tokens import TokenIssuer, decode_spec
from blocklearn.devtools.emulator.wire import MAX_REQUEST_BYTES as MAX_REQUEST_BYTES  # with the other limits

Obj = dict[str, Any]
Key = tuple[str, str | None, str]  # (group/version/plural, namespace, name)

log = logging.getLogger("blocklearn.devtools.emulator")

# How many watch events are kept for resuming watches; older versions get 410 Gone.
EVENT_LOG_SIZE = 50_000
# The limits of a default kube-apiserver and etcd: a request body (apiserver's MaxRequestBodyBytes),
# an object's annotations (TotalAnnotationSizeLimitB), and a stored value (etcd's --max-request-bytes).
MAX_ANNOTATION_BYTES = 256 * 1024
MAX_STORED_BYTES = 1536 * 1024

# Namespaces the API server makes at start (kube-node-lease is the kubelets'); the first three may
# never be deleted (the NamespaceLifecycle admission plugin's immortal namespaces).
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
_NOT_FOUND = "the server could not find the requested resource"


# What Go's strconv takes as a number: ASCII digits only (str.isdigit and int() take "²" and "1_0").
_INT = re.compile(r"[+-]?[0-9]+")
# A resourceVersion or continue token this emulator can have issued (etcd's revisions are uint64).
_VERSION = re.compile(r"[0-9]{1,19}")


def _int_param(request: kmock.Request, name: str) -> int | None:
    """An int64 query parameter; 400 for one that is not, as the API server's parameter codec."""
    text = request.params.get(name)
    if text in (None, ""):
        return None
    quoted = names.go_quote(str(text))
    if not _INT.fullmatch(str(text)):
        raise bad_request(f"strconv.ParseInt: parsing {quoted}: invalid syntax")
    digits = str(text).lstrip("+-")
    value = int(str(text)) if len(digits) <= 19 else None  # int() refuses over 4,300 digits
    if value is None or not -(1 << 63) <= value < 1 << 63:
        raise bad_request(f"strconv.ParseInt: parsing {quoted}: value out of range")
    return value


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    """A Kubernetes API for the operator's own resources, with the semantics kopf and kubectl need."""

    NAMESPACES: ClassVar[str] = "/v1/namespaces"
    QUOTAS: ClassVar[str] = "/v1/resourcequotas"

    # kube-controller-manager's --enable-garbage-collector: off, deletion ignores propagation and
    # dependents stay (a test of the controller's own clean-up turns it off).
    garbage_collection: bool = True
    _types: dict[str, ResourceType] = attrs.field(factory=dict, init=False)
    _store: dict[Key, Obj] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=0, init=False)
    # Indexes for the controllers: uid -> key, owner uid -> dependents, objects per (type, namespace).
    _uids: dict[str, Key] = attrs.field(factory=dict, init=False)
    _dependents: dict[str, set[Key]] = attrs.field(factory=dict, init=False)
    _counts: collections.Counter[tuple[str, str | None]] = attrs.field(
        factory=collections.Counter, init=False
    )
    _quotas: dict[str | None, set[Key]] = attrs.field(factory=dict, init=False)
    _controllers: ControllerManager = attrs.field(init=False)
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
    # The clock of creation and deletion timestamps: a test that moves the controller's clock
    # (tests/harness.py) gives the emulator the same one, as a cluster's nodes share time.
    clock: Callable[[], float] = attrs.field(default=time.time, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._controllers = ControllerManager(self)
        self.fallback[kmock.method.PUT] << self._serve_replace
        self.fallback[kmock.method.DELETE] << self._serve_delete_collection
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
        self._ensure_system_namespaces()

    async def __aenter__(self) -> Emulator:
        await super().__aenter__()
        self._controllers.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._controllers.stop()
        await super().__aexit__(*exc)

    def _now(self) -> str:
        return datetime.datetime.fromtimestamp(self.clock(), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def revision(self) -> int:
        """The resourceVersion counter: it moves once for every write to any object (etcd's revision)."""
        return self._rv

    async def settled(self) -> None:
        """Wait until the controllers (garbage collector, namespaces, quotas) have nothing left to do."""
        await self._controllers.idle()

    # -- setup -------------------------------------------------------------------------------------

    def register(self, rtype: ResourceType) -> None:
        self._types[rtype.key] = rtype
        self.resources[rtype.key] = kmock.ResourceInfo(
            kind=rtype.kind,
            singular=rtype.singular,
            namespaced=rtype.namespaced,
            shortnames=set(rtype.shortnames),
            verbs=set(VERBS),
            subresources={"status"} if rtype.status_subresource else set(),
        )

    def register_crds(self, crds: Iterable[Obj]) -> None:
        crd_type = self._types["apiextensions.k8s.io/v1/customresourcedefinitions"]
        for crd in crds:
            for rtype in ResourceType.from_crd(crd):
                self.register(rtype)
            stored = copy.deepcopy(crd)
            stored["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=self._now(), generation=1)
            self._put(crd_type, (crd_type.key, None, crd["metadata"]["name"]), stored, "ADDED")

    def _ensure_system_namespaces(self) -> None:
        rtype = self._types[self.NAMESPACES]
        for name in SYSTEM_NAMESPACES:
            if (self.NAMESPACES, None, name) not in self._store:
                obj: Obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                obj = self._new_namespace(obj)
                obj["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=self._now(), generation=1)
                self._put(rtype, (self.NAMESPACES, None, name), obj, "ADDED")

    def _new_namespace(self, obj: Obj) -> Obj:
        """What the namespace strategy fills in on create: its name label, the `kubernetes`
        finalizer (only the namespace controller removes it) and phase Active."""
        meta = obj["metadata"]
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        spec = obj.setdefault("spec", {})
        if NAMESPACE_FINALIZER not in (spec.get("finalizers") or []):
            spec["finalizers"] = [*(spec.get("finalizers") or []), NAMESPACE_FINALIZER]
        obj["status"] = {"phase": "Active"}
        return obj

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
            verbs = VERBS
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
            raise status(404, "NotFound", _NOT_FOUND)
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
            k: Key = (key[0], key[1], key[2])
            self._index(k, self._store.get(k), obj)
            self._store[k] = obj
        # A snapshot from before namespaces were kept has none: the API server's own come back.
        self._ensure_system_namespaces()
        # What the controllers had not finished (a deletion, a quota) resumes.
        for k, obj in self._store.items():
            self._controllers.changed(k, None, obj)

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

    # -- the store: every write goes through _put or _drop -----------------------------------------

    def _put(self, rtype: ResourceType, key: Key, obj: Obj, event: str) -> Obj:
        """Store a created or changed object under a new resourceVersion and tell the watchers."""
        obj["metadata"]["resourceVersion"] = self._bump()
        old = self._store.get(key)
        self._index(key, old, obj)
        self._store[key] = obj
        self._emit(rtype, event, obj)
        self._controllers.changed(key, old, obj)
        return obj

    def _drop(self, rtype: ResourceType, key: Key, obj: Obj) -> Obj:
        """Remove an object for good: its DELETED event carries a resourceVersion of its own."""
        stored = self._store.pop(key, None)
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = self._bump()
        self._index(key, stored, None)
        self._emit(rtype, "DELETED", obj)
        self._controllers.changed(key, obj, None)
        return obj

    def _index(self, key: Key, old: Obj | None, new: Obj | None) -> None:
        for obj, sign in ((old, -1), (new, 1)):
            if obj is None:
                continue
            meta = obj["metadata"]
            if sign < 0:
                self._uids.pop(meta.get("uid", ""), None)
            else:
                self._uids[meta.get("uid", "")] = key
            self._counts[(key[0], key[1])] += sign
            if key[0] == self.QUOTAS:
                quotas = self._quotas.setdefault(key[1], set())
                if sign > 0:
                    quotas.add(key)
                else:
                    quotas.discard(key)
            for ref in meta.get("ownerReferences") or []:
                dependents = self._dependents.setdefault(ref.get("uid", ""), set())
                if sign < 0:
                    dependents.discard(key)
                    if not dependents:
                        del self._dependents[ref.get("uid", "")]
                else:
                    dependents.add(key)

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

    # -- for the controllers (controllers.py) ------------------------------------------------------

    def by_key(self, key: Key) -> Obj | None:
        return self._store.get(key)

    def key_of(self, uid: str) -> Key | None:
        return self._uids.get(uid)

    def by_uid(self, uid: str) -> Obj | None:
        key = self._uids.get(uid)
        return None if key is None else self._store.get(key)

    def dependents_of(self, uid: str) -> list[Key]:
        return sorted(self._dependents.get(uid, ()), key=str)

    def has_quotas(self, namespace: str) -> bool:
        return bool(self._quotas.get(namespace))

    def namespace_contents(self, namespace: str) -> list[Key]:
        return sorted((k for k in self._store if k[1] == namespace), key=str)

    def remove_owner_references(self, key: Key, uids: set[str]) -> None:
        """The garbage collector's patch of a dependent: its references to `uids` go, nothing else."""
        current = self._store.get(key)
        if current is None:
            return
        refs = current["metadata"].get("ownerReferences") or []
        kept = [r for r in refs if r.get("uid") not in uids]
        if len(kept) != len(refs):
            desired = copy.deepcopy(current)
            if kept:
                desired["metadata"]["ownerReferences"] = kept
            else:
                desired["metadata"].pop("ownerReferences", None)
            self._commit(self._types[key[0]], key, current, desired)

    def remove_finalizer(self, key: Key, finalizer: str) -> None:
        current = self._store.get(key)
        if current is None or finalizer not in (current["metadata"].get("finalizers") or []):
            return
        desired = copy.deepcopy(current)
        kept = [f for f in desired["metadata"]["finalizers"] if f != finalizer]
        if kept:
            desired["metadata"]["finalizers"] = kept
        else:
            desired["metadata"].pop("finalizers")
        self._commit(self._types[key[0]], key, current, desired)

    def delete_object(self, key: Key, policy: str) -> None:
        """A DELETE as the controllers send it, with a propagation policy and its uid as precondition."""
        current = self._store.get(key)
        if current is not None:
            self._delete(self._types[key[0]], key, current, {"propagationPolicy": policy})

    def finalize_namespace(self, name: str) -> None:
        """The namespace controller's last steps: PUT /finalize without `kubernetes`, then DELETE."""
        key = (self.NAMESPACES, None, name)
        current = self._store.get(key)
        if current is None:
            return
        spec_finalizers = (current.get("spec") or {}).get("finalizers") or []
        if NAMESPACE_FINALIZER in spec_finalizers:
            desired = copy.deepcopy(current)
            desired["spec"]["finalizers"] = [f for f in spec_finalizers if f != NAMESPACE_FINALIZER]
            current = self._commit(self._types[self.NAMESPACES], key, current, desired)
        if not (current.get("spec") or {}).get("finalizers") and not current["metadata"].get("finalizers"):
            self._drop(self._types[self.NAMESPACES], key, current)

    def sync_quotas(self, namespace: str) -> None:
        """The resource quota controller: status.hard from spec.hard, status.used counted."""
        rtype = self._types[self.QUOTAS]
        for key in sorted(self._quotas.get(namespace, ())):
            current = self._store[key]
            counts = {}
            for hard in (current.get("spec") or {}).get("hard") or {}:
                counted = next(
                    (t for t in self._types.values() if quota.count_name(t.plural, t.group) == hard), None
                )
                if counted is not None:
                    counts[hard] = self._counts[(counted.key, namespace)]
            desired = {**current, "status": quota.status_of(current, counts)}
            if desired != current:
                self._commit(rtype, key, current, copy.deepcopy(desired))

    def _commit(self, rtype: ResourceType, key: Key, current: Obj, desired: Obj) -> Obj:
        """A write by the control plane itself: no schema to pass, and the last finalizer of an
        object being deleted removes it."""
        if desired == current:
            return current
        meta = desired["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and rtype.key != self.NAMESPACES:
            return self._drop(rtype, key, desired)
        return self._put(rtype, key, desired, "MODIFIED")

    # -- request plumbing --------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """kmock's RawHandler.__call__, with our own parsing of the request (wire.py)."""
        raw_response: aiohttp.web.StreamResponse | None = None
        try:
            request = await wire.read_request(raw_request, self._types.get, len(self._requests))
            self._requests.append(request)
            try:
                response: aiohttp.web.StreamResponse = await self._handle(request)
                return response
            except rendering.StreamingError as e:
                raw_response = e.args[0]
                raise e.__cause__ or e from None
        except Exception as e:
            if raw_response is None or not raw_response.prepared:
                return await self._render_error(e)
            await self._stream_error(e, raw_response)
            await raw_response.write_eof()
            return raw_response

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        """A Status as the API server writes it: no traceback, whatever failed."""
        if isinstance(exc, kmock.KubernetesError):
            code, reason, message, details = exc.status, exc.reason, exc.message, exc.details
            if isinstance(exc, kmock.KubernetesNotFoundError) and not isinstance(exc.details, dict):
                reason, message = "NotFound", _NOT_FOUND  # kmock's own 404s, in the API server's words
        else:
            log.error("Failed a request: %s", "".join(traceback.format_exception(exc)))
            code, reason, message, details = 500, "InternalError", f"Internal error occurred: {exc!r}", {}
        payload: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
        payload.update(message=message or "", reason=reason or "", code=code)
        if details:
            payload["details"] = details
        return aiohttp.web.json_response(payload, status=code)

    async def _stream_error(self, exc: Exception, raw_response: aiohttp.web.StreamResponse) -> None:
        log.error("Failed a stream: %s", "".join(traceback.format_exception(exc)))
        failure = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500}
        failure.update(reason="InternalError", message="Internal error occurred")
        event = {"type": "ERROR", "object": failure}
        await raw_response.write(json.dumps(event).encode() + b"\n")

    async def _handle(self, request: kmock.Request) -> Any:
        log.debug("Served request: method=%s url=%s", request.method, request.url)
        self._record_call(request)
        handler = self._direct_handler(request)
        if handler is None and request.resource is not None and request.resource.plural:
            self._rtype(request)  # 404 for a resource the server does not have
            raise wire.method_not_allowed()
        if self.fault is not None and handler is not None:
            code = await self.fault(request)
            if code is not None:
                raise status(code, "InjectedFault", f"injected fault {code}")
        # kmock matches a request against a reaction by filtering the whole request history, so
        # each request costs O(history): fine for a short test, fatal for a long-running server.
        # With no reactions added by a test, our own verbs are served directly and the history
        # is kept short; once a test adds reactions (to inject faults), kmock matches as usual.
        if len(self._payloads) == self._builtin_reactions:
            self._trim_history()
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
            else "deletecollection"
            if request.method == kmock.method.DELETE and not request.name
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
        """The verb that serves a request for a resource; None for discovery, others, and 405s."""
        if request.resource is None or not request.resource.plural:
            return None  # discovery (/apis/group/version parses as a list of nothing) and non-K8s paths
        method, named = request.method, bool(request.name)
        if method == kmock.method.PUT and named:
            return self._serve_replace
        if method == kmock.method.POST and named and request.subresource == "token":
            return self._serve_create
        if method == kmock.method.DELETE and not named:
            return self._serve_delete_collection
        if request.action is None or (method == kmock.method.POST and named):
            return None
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
            raise status(404, "NotFound", _NOT_FOUND)
        rtype = self._types[key]
        if request.namespace is not None and not rtype.namespaced:
            raise status(404, "NotFound", _NOT_FOUND)
        if rtype.namespaced and request.namespace is None:
            # Across namespaces a namespaced resource is only listed and watched.
            if request.name:
                raise status(404, "NotFound", _NOT_FOUND)
            if request.method != kmock.method.GET:
                raise wire.method_not_allowed()
        sub = request.subresource
        allowed = {"status"} if rtype.status_subresource else set()
        allowed |= {"token"} if rtype.plural == "serviceaccounts" else set()
        allowed |= {"finalize"} if rtype.key == self.NAMESPACES else set()
        if sub is not None and (sub not in allowed or not request.name):
            raise status(404, "NotFound", _NOT_FOUND)
        return rtype

    # -- validation --------------------------------------------------------------------------------

    def _validate(self, rtype: ResourceType, obj: Obj, strict: bool = False) -> Obj:
        """The strategy's validation: metadata, then the structural schema; one 422 for all."""
        meta = obj.get("metadata", {})
        validation.builtin_errors(rtype, obj)
        errors = validation.object_meta_errors(rtype, meta)
        if rtype.key == self.QUOTAS:
            errors += [FieldError(f, "FieldValueInvalid", m) for f, m in quota.hard_errors(obj)]
        pruned = obj
        if rtype.schema is not None:
            body = {k: v for k, v in obj.items() if k != "metadata"}
            pruned, schema_errors = structural.prune_and_validate(rtype.schema, body, strict=strict)
            for err in schema_errors[:20]:
                path, _, message = err.partition(": ")
                errors.append(
                    FieldError(path, "FieldValueInvalid", message)
                    if message
                    else FieldError("", "FieldValueInvalid", err)
                )
            pruned = {
                **pruned,
                "metadata": meta,
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
            }
        if errors:
            raise statuses.invalid(rtype.kind, rtype.group, meta.get("name", ""), errors)
        return pruned

    def _check_limits(self, rtype: ResourceType, obj: Obj) -> None:
        """The API server's limits on what it stores: annotations, then the whole value in etcd."""
        meta = obj.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        size = sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())
        if size > MAX_ANNOTATION_BYTES:
            message = f"Too long: must have at most {MAX_ANNOTATION_BYTES} bytes"
            raise statuses.invalid(
                rtype.kind,
                rtype.group,
                meta.get("name", ""),
                [FieldError("metadata.annotations", "FieldValueTooLong", message)],
            )
        if stored_size(obj) > MAX_STORED_BYTES:
            # etcd refuses it and the API server passes the refusal on as an internal error
            # (kubernetes/kubernetes#112152): a write that can never succeed, however often retried.
            raise status(500, "InternalError", "etcdserver: request is too large")

    def _admit_namespace(self, rtype: ResourceType, namespace: str | None, name: str) -> None:
        """The NamespaceLifecycle admission plugin, for a create: 404 or 403."""
        if not rtype.namespaced or namespace is None:
            return
        ns = self._store.get((self.NAMESPACES, None, namespace))
        if ns is None:
            raise statuses.not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp") or (ns.get("status") or {}).get("phase") == "Terminating":
            cause = {
                "reason": "NamespaceTerminating",
                "message": f"namespace {namespace} is being terminated",
                "field": "metadata.namespace",
            }
            raise statuses.forbidden(
                rtype.plural,
                rtype.group,
                name,
                f"unable to create new content in namespace {namespace} because it is being terminated",
                causes=[cause],
            )

    def _admit_quota(self, rtype: ResourceType, namespace: str | None, name: str) -> None:
        """The ResourceQuota admission plugin: refuse over a quota, else count the create in it."""
        if namespace is None or not self.has_quotas(namespace):
            return
        keys = sorted(self._quotas.get(namespace, ()))
        try:
            updated = quota.admit([self._store[k] for k in keys], quota.count_name(rtype.plural, rtype.group))
        except quota.Exceeded as exc:
            raise statuses.forbidden(rtype.plural, rtype.group, name, str(exc)) from None
        quota_type = self._types[self.QUOTAS]
        for obj in updated:
            key = (self.QUOTAS, namespace, obj["metadata"]["name"])
            self._commit(quota_type, key, self._store[key], copy.deepcopy(obj))

    # -- verbs -------------------------------------------------------------------------------------

    async def _serve_fetch(self, request: kmock.Request) -> Any:
        rtype, _, obj = self._existing(request)
        if "as=Table" in request.headers.get("Accept", ""):
            # kubectl get blk NAME asks for a Table too: the printer columns, as in a list.
            return render_table(rtype.printer_columns or [AGE_COLUMN], [obj], str(self._rv))
        return obj

    def _existing(self, request: kmock.Request) -> tuple[ResourceType, Key, Obj]:
        """The addressed object, or a Kubernetes 404."""
        rtype = self._rtype(request)
        name = request.name or ""
        if problems := names.path_segment(name):
            raise bad_request(f"Name parameter invalid: {names.go_quote(name)}: {';'.join(problems)}")
        key = (rtype.key, request.namespace, name)
        current = self._store.get(key)
        if current is None:
            raise statuses.not_found(rtype.plural, name, rtype.group)
        return rtype, key, current

    async def _serve_list(self, request: kmock.Request) -> Any:
        rtype = self._rtype(request)
        selector = request.params.get("labelSelector")
        fields = request.params.get("fieldSelector")
        limit = _int_param(request, "limit") or 0
        token = request.params.get("continue") or ""
        if token and not _VERSION.fullmatch(token):
            raise status(
                410,
                "Expired",
                "The provided continue parameter is too old to display a consistent list result. "
                "You can start a new list without the continue parameter.",
            )
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
                if labels_match(selector, o["metadata"].get("labels", {})) and fields_match(fields, o)
            ]
            items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
            self._list_cache[cache_key] = (self._rv, items)
        # Chunked lists (limit/continue), as clients page through large collections. The token is
        # the offset: simpler than the real server's snapshot, and enough for sorted, rarely
        # changing test data.
        start = int(token or 0)
        page = items[start : start + limit] if limit > 0 else items[start:]
        meta: Obj = {"resourceVersion": str(self._rv)}
        if limit > 0 and start + limit < len(items):
            meta["continue"] = str(start + limit)
            meta["remainingItemCount"] = len(items) - start - limit
        if "as=Table" in request.headers.get("Accept", ""):
            table = render_table(rtype.printer_columns or [AGE_COLUMN], page, str(self._rv))
            table["metadata"] = meta
            return table
        return {"apiVersion": rtype.api_version, "kind": f"{rtype.kind}List", "metadata": meta, "items": page}

    async def _serve_create(self, request: kmock.Request) -> Any:
        rtype = self._rtype(request)
        if rtype.plural == "serviceaccounts" and request.subresource == "token":
            spec = decode_spec("TokenRequest", request.data)  # the body first, as the handler does
            _, _, account = self._existing(request)
            payload = self.tokens.request(account["metadata"]["namespace"], account, spec)
            return Response(status=201, payload=payload)
        if rtype.key == "authentication.k8s.io/v1/tokenreviews":
            spec = decode_spec("TokenReview", request.data)
            review = self.tokens.review(spec, self._account_uid)
            return Response(status=201, payload=review)
        obj = validation.read_object(rtype, request.namespace, request.data)
        validation.builtin_errors(rtype, obj)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            # The SimpleNameGenerator: the prefix cut to 58 characters, then 5 random ones.
            meta["name"] = meta["generateName"][:58] + uuid.uuid4().hex[:5]
        name = meta.get("name", "")
        if rtype.namespaced:
            meta["namespace"] = request.namespace or meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        namespace = meta.get("namespace")
        self._admit_namespace(rtype, namespace, name)
        if rtype.status_subresource:
            obj.pop("status", None)
        if rtype.key == self.NAMESPACES and name:
            obj = self._new_namespace(obj)
        obj = self._validate(rtype, obj, _strict(request))
        self._admit_quota(rtype, namespace, name)
        key = (rtype.key, namespace, name)
        if key in self._store:
            self._controllers.enqueue(("quota", namespace or ""))  # a count charged for nothing comes back
            raise status(
                409,
                "AlreadyExists",
                f"{rtype.qualified} {names.go_quote(name)} already exists",
                name=name,
                group=rtype.group,
                kind=rtype.plural,
            )
        self._check_limits(rtype, obj)
        meta = obj["metadata"]
        for owned in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink"):
            meta.pop(owned, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=self._now(), generation=1)
        obj = self._put(rtype, key, obj, "ADDED")
        self.creations[f"{rtype.plural}/{key[1]}/{name}"] += 1
        return Response(status=201, payload=obj)

    def _account_uid(self, namespace: str, name: str) -> str | None:
        account = self._store.get(("/v1/serviceaccounts", namespace, name))
        return account["metadata"]["uid"] if account is not None else None

    async def _serve_update(self, request: kmock.Request) -> Any:
        """PATCH: JSON merge patch (kopf, kubectl apply for custom resources) or JSON patch."""
        rtype, key, current = self._existing(request)
        patch = request.data
        ctype = wire.media_type(request.headers.get("Content-Type"))
        if ctype == wire.JSON_PATCH:
            desired = apply_json_patch(current, patch)
        elif isinstance(patch, dict):
            meta_patch = patch.get("metadata")
            precondition = meta_patch.get("resourceVersion") if isinstance(meta_patch, dict) else None
            if precondition and precondition != current["metadata"]["resourceVersion"]:
                raise self._conflict(rtype, request.name)
            desired = merge_patch(current, patch)
        else:
            raise bad_request("json: cannot unmarshal into a merge patch: the patch is not a JSON object")
        return self._write(rtype, key, current, desired, request.subresource, _strict(request))

    async def _serve_replace(self, request: kmock.Request) -> Any:
        """PUT: replace the object, guarded by its resourceVersion."""
        rtype, key, current = self._existing(request)
        desired = validation.read_object(rtype, request.namespace, request.data)
        given = desired["metadata"].get("resourceVersion")
        if desired["metadata"].get("name", request.name) != request.name:
            raise bad_request(
                f"the name of the object ({desired['metadata'].get('name')}) does not match the name "
                f"on the URL ({request.name})"
            )
        if not given:
            raise statuses.invalid(
                rtype.kind,
                rtype.group,
                request.name or "",
                [
                    FieldError(
                        "metadata.resourceVersion",
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        if given != current["metadata"]["resourceVersion"]:
            raise self._conflict(rtype, request.name)
        return self._write(rtype, key, current, copy.deepcopy(desired), request.subresource, _strict(request))

    def _conflict(self, rtype: ResourceType, name: str | None) -> kmock.KubernetesError:
        return status(
            409,
            "Conflict",
            f"Operation cannot be fulfilled on {rtype.qualified} {names.go_quote(name or '')}: "
            "the object has been modified; please apply your changes to the latest version and try again",
            name=name or "",
            group=rtype.group,
            kind=rtype.plural,
        )

    def _write(
        self, rtype: ResourceType, key: Key, current: Obj, desired: Obj, sub: str | None, strict: bool = False
    ) -> Any:
        if not isinstance(desired, dict):
            raise bad_request("the patched object is not a JSON object")
        if rtype.status_subresource and sub == "status":
            status_ = desired.get("status")
            desired = {**current, "status": status_}
            if status_ is None:
                desired.pop("status")
        elif rtype.key == self.NAMESPACES and sub == "finalize":
            # Only spec.finalizers changes: the namespace controller's last step, or a person's.
            finalizers = (
                (desired.get("spec") or {}).get("finalizers")
                if isinstance(desired.get("spec"), dict)
                else None
            )
            desired = copy.deepcopy(current)
            desired["spec"]["finalizers"] = [f for f in finalizers or [] if isinstance(f, str)]
        elif rtype.status_subresource:
            desired = {k: v for k, v in desired.items() if k != "status"}
            if "status" in current:
                desired["status"] = current["status"]
            if rtype.key == self.NAMESPACES:
                desired["spec"] = copy.deepcopy(current.get("spec") or {})  # finalizers only via /finalize
        meta = validation.coerce_metadata(rtype, desired.get("metadata"))
        # Identity and server-owned fields are not the client's to change.
        for owned in ("uid", "creationTimestamp", "generation", "resourceVersion", "name", "namespace"):
            if owned in current["metadata"]:
                meta[owned] = current["metadata"][owned]
        for owned in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(owned, None)
            if owned in current["metadata"]:
                meta[owned] = current["metadata"][owned]
        if rtype.key == self.NAMESPACES:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = key[2]
        desired["metadata"] = meta
        desired["apiVersion"], desired["kind"] = rtype.api_version, rtype.kind
        desired = self._validate(rtype, desired, strict)
        if desired == current:
            return current  # a no-op write changes nothing, not even the resourceVersion
        if _spec_of(desired) != _spec_of(current):
            desired["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        self._check_limits(rtype, desired)
        if rtype.key == self.QUOTAS and (desired.get("spec") or {}) != (current.get("spec") or {}):
            desired.pop("status", None)  # the quota controller computes it again
        return self._commit(rtype, key, current, desired)

    async def _serve_delete(self, request: kmock.Request) -> Any:
        rtype, key, current = self._existing(request)
        options = deletion.delete_options(request.data, request.params)
        preconditions = options.get("preconditions") or {}
        for field_, given in (
            ("UID", preconditions.get("uid")),
            ("ResourceVersion", preconditions.get("resourceVersion")),
        ):
            actual = current["metadata"]["uid" if field_ == "UID" else "resourceVersion"]
            if given and given != actual:
                raise status(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on {rtype.qualified} "
                    f"{names.go_quote(request.name or '')}: Precondition failed: "
                    f"{field_} in precondition: {given}, {field_} in object meta: {actual}",
                    name=request.name or "",
                    group=rtype.group,
                    kind=rtype.plural,
                )
        obj, deleted = self._delete(rtype, key, current, options)
        # 202 only where the API server gives it: not deleted at once, and orphanDependents=false.
        code = 202 if not deleted and options.get("orphanDependents") is False else 200
        return Response(status=code, payload=obj)

    async def _serve_delete_collection(self, request: kmock.Request) -> Any:
        rtype = self._rtype(request)
        options = deletion.delete_options(request.data, request.params)
        selector, fields = request.params.get("labelSelector"), request.params.get("fieldSelector")
        deleted = []
        for key in sorted(
            k
            for k in self._store
            if k[0] == rtype.key and (request.namespace is None or k[1] == request.namespace)
        ):
            obj = self._store.get(key)
            if (
                obj is not None
                and labels_match(selector, obj["metadata"].get("labels", {}))
                and fields_match(fields, obj)
            ):
                deleted.append(self._delete(rtype, key, obj, options)[0])
        return {
            "apiVersion": rtype.api_version,
            "kind": f"{rtype.kind}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": deleted,
        }

    def _delete(self, rtype: ResourceType, key: Key, current: Obj, options: Obj) -> tuple[Obj, bool]:
        """The registry's Delete: finalizers for the garbage collector, then at once or marked.

        Returns the object as the response shows it and whether it is gone."""
        if rtype.key == self.NAMESPACES:
            return self._delete_namespace(key, current)
        meta = current["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if self.garbage_collection:
            finalizers = deletion.finalizers_for(options, finalizers)
        if not finalizers:
            return self._drop(rtype, key, current), True
        desired = copy.deepcopy(current)
        desired["metadata"]["finalizers"] = finalizers
        desired["metadata"].setdefault("deletionTimestamp", self._now())
        desired["metadata"]["deletionGracePeriodSeconds"] = 0
        return self._commit(rtype, key, current, desired), False

    def _delete_namespace(self, key: Key, current: Obj) -> tuple[Obj, bool]:
        """The namespace registry's Delete: Terminating first; the controller empties and removes it."""
        rtype, name = self._types[self.NAMESPACES], key[2]
        if name in IMMORTAL_NAMESPACES:
            raise statuses.forbidden("namespaces", "", name, "this namespace may not be deleted")
        if current["metadata"].get("deletionTimestamp"):
            if (current.get("spec") or {}).get("finalizers"):
                raise status(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on namespaces {names.go_quote(name)}: "
                    "The system is ensuring all content is removed from this namespace.  "
                    "Upon completion, this namespace will automatically be purged by the system.",
                    name=name,
                    kind="namespaces",
                )
            return self._drop(rtype, key, current), True
        desired = copy.deepcopy(current)
        desired["metadata"]["deletionTimestamp"] = self._now()
        desired.setdefault("status", {})["phase"] = "Terminating"
        return self._put(rtype, key, desired, "MODIFIED"), False

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:  # type: ignore[override]
        # A coroutine that returns a stream, so that an unknown resource is a plain 404 response.
        # Parameters are checked before the stream starts: once its 200 is sent, an error can only
        # be an event in it.
        rtype = self._rtype(request)
        timeout = _int_param(request, "timeoutSeconds")
        since = request.params.get("resourceVersion") or ""
        if since in ("", "0"):
            pass
        elif not _VERSION.fullmatch(since) or int(since) < self._compacted_rv:
            return self._gone(since)
        elif int(since) > self._rv:
            # A version this API never reached (an emulator restarted without its state, and a
            # client that still watches from before): the watch cache's answer, so that it relists.
            raise statuses.too_large_resource_version(int(since), self._rv)
        return self._watch(rtype, request, since, timeout)

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

    async def _watch(
        self, rtype: ResourceType, request: kmock.Request, since: str, timeout: int | None
    ) -> AsyncIterator[Any]:
        yield b""  # send the headers now, even if nothing happens for a while
        selector = request.params.get("labelSelector")
        deadline = None if not timeout else asyncio.get_running_loop().time() + timeout

        def visible(obj: Obj) -> bool:
            meta = obj["metadata"]
            return (request.namespace is None or meta.get("namespace") == request.namespace) and (
                labels_match(selector, meta.get("labels", {}))
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
