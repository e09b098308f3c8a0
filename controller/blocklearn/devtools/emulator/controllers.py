"""The part of kube-controller-manager the emulator needs: the garbage collector, the namespace
controller and the resource quota controller.

They run as one asyncio task beside the API, after the request that set them off has been answered,
and write through the API's store like any client: every step is a write of its own, with its own
resourceVersion and watch event, in the order a real cluster shows them:

- Orphan (`propagationPolicy: Orphan`, or `orphanDependents: true`): the API server gives the owner
  the `orphan` finalizer and a deletionTimestamp; the collector removes the owner's reference from
  each dependent (one write each), then the finalizer, and the owner goes.
- Foreground: the owner gets the `foregroundDeletion` finalizer; the collector deletes its
  dependents, waits for those that block it (`blockOwnerDeletion: true`), then removes the
  finalizer.
- Background (the default): the owner goes at once; the collector then deletes each dependent whose
  owners are all gone, and only removes the reference from one that has another owner.
- A dependent whose owner does not exist (a wrong uid, or an owner deleted before it was created)
  is collected as well, as the real collector does once it has looked the owner up.
- Deleting a Namespace marks it Terminating; the namespace controller deletes what is in it (each
  object with Background propagation), then removes the `kubernetes` finalizer, and it goes.
- A ResourceQuota's status (hard from spec, used counted) is written when it is created or changed,
  and its count given back as objects are deleted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blocklearn.devtools.emulator.api import Emulator, Key

log = logging.getLogger("blocklearn.devtools.emulator")

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
NAMESPACE_FINALIZER = "kubernetes"

Obj = dict[str, Any]
Work = tuple[str, str]  # ("owner", uid) | ("dependent", uid) | ("namespace", name) | ("quota", namespace)


class ControllerManager:
    def __init__(self, api: Emulator) -> None:
        self.api = api
        self._queue: dict[Work, None] = {}  # an ordered set: each piece of work once, in order
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="emulator-controllers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def idle(self) -> None:
        """Return once nothing is left to do (for tests that look at the end state). Without the
        task (an emulator not entered), the work is done here."""
        if self._task is None:
            while self._queue:
                work = next(iter(self._queue))
                del self._queue[work]
                self._process(work)
            self._idle.set()
            return
        while self._queue or not self._idle.is_set():
            await self._idle.wait()
            await asyncio.sleep(0)

    def enqueue(self, work: Work) -> None:
        self._queue[work] = None
        self._idle.clear()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                work = next(iter(self._queue))
                del self._queue[work]
                try:
                    self._process(work)
                except Exception:  # a controller that fails retries on the next change, as a real one
                    log.exception("Failed a controller step: work=%s", work)
                await asyncio.sleep(0)  # clients' requests interleave, as with a real control plane
            self._idle.set()

    # -- what a change sets off ---------------------------------------------------------------------

    def changed(self, key: Key, old: Obj | None, new: Obj | None) -> None:
        """Called by the store on every write: enqueue what the controllers must look at."""
        api = self.api
        obj = new if new is not None else old
        assert obj is not None
        meta = obj["metadata"]
        namespace = key[1]
        if key[0] == api.NAMESPACES:
            if new is not None and meta.get("deletionTimestamp"):
                self.enqueue(("namespace", key[2]))
            return
        if key[0] == api.QUOTAS:
            self.enqueue(("quota", key[1] or ""))
        if not api.garbage_collection:
            pass
        elif new is None:
            if api.dependents_of(meta["uid"]):
                self.enqueue(("owner", meta["uid"]))
            for ref in meta.get("ownerReferences") or []:  # an owner waiting for this dependent
                if _deleting_in_foreground(api.by_uid(ref.get("uid", ""))):
                    self.enqueue(("owner", ref["uid"]))
        else:
            finalizers = meta.get("finalizers") or []
            if meta.get("deletionTimestamp") and (ORPHAN in finalizers or FOREGROUND in finalizers):
                self.enqueue(("owner", meta["uid"]))
            for ref in meta.get("ownerReferences") or []:
                owner = api.by_uid(ref.get("uid", ""))
                if owner is None or _deleting_in_foreground(owner):
                    self.enqueue(("dependent", meta["uid"]))
                    break
        if namespace is not None:
            if new is None and api.has_quotas(namespace):
                self.enqueue(("quota", namespace))
            ns = api.by_key((api.NAMESPACES, None, namespace))
            if new is None and ns is not None and ns["metadata"].get("deletionTimestamp"):
                self.enqueue(("namespace", namespace))

    def _process(self, work: Work) -> None:
        kind, name = work
        if kind == "owner":
            self._owner(name)
        elif kind == "dependent":
            key = self.api.key_of(name)
            if key is not None:
                self._attempt_to_delete(key)
        elif kind == "namespace":
            self._namespace(name)
        elif kind == "quota":
            self.api.sync_quotas(name)

    # -- the garbage collector ----------------------------------------------------------------------

    def _owner(self, uid: str) -> None:
        api = self.api
        key = api.key_of(uid)
        if key is None:  # gone: its dependents are dangling now
            for dependent in api.dependents_of(uid):
                self._attempt_to_delete(dependent)
            return
        meta = api.by_key(key)["metadata"]  # type: ignore[index]
        finalizers = meta.get("finalizers") or []
        if not meta.get("deletionTimestamp"):
            return
        if ORPHAN in finalizers:
            for dependent in api.dependents_of(uid):
                api.remove_owner_references(dependent, {uid})
            api.remove_finalizer(key, ORPHAN)
        elif FOREGROUND in finalizers:
            for dependent in api.dependents_of(uid):
                self._attempt_to_delete(dependent)
            if not any(self._blocks(dependent, uid) for dependent in api.dependents_of(uid)):
                api.remove_finalizer(key, FOREGROUND)

    def _blocks(self, key: Key, owner_uid: str) -> bool:
        obj = self.api.by_key(key)
        refs = (obj or {}).get("metadata", {}).get("ownerReferences") or []
        return any(r.get("uid") == owner_uid and r.get("blockOwnerDeletion") for r in refs)

    def _attempt_to_delete(self, key: Key) -> None:
        """The collector's attemptToDeleteItem: classify the owners, then delete or unlink."""
        api = self.api
        obj = api.by_key(key)
        if obj is None:
            return
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        if meta.get("deletionTimestamp") and FOREGROUND not in finalizers:
            return  # already being deleted
        refs = meta.get("ownerReferences") or []
        solid, gone = [], []
        for ref in refs:
            owner = api.by_uid(ref.get("uid", ""))
            owner_meta = (owner or {}).get("metadata", {})
            if (
                owner is None
                or owner_meta.get("name") != ref.get("name")
                or owner_meta.get("namespace") not in (None, key[1])
            ):
                gone.append(ref["uid"])  # dangling: looked up by name, not there with this uid
            elif _deleting_in_foreground(owner):
                gone.append(ref["uid"])  # waiting for its dependents to go
            else:
                solid.append(ref["uid"])
        if not refs:
            return
        if solid:
            if gone:
                api.remove_owner_references(key, set(gone))
            return
        waiting = any(_deleting_in_foreground(api.by_uid(u)) for u in gone)
        if waiting and api.dependents_of(meta["uid"]):
            policy = "Foreground"
        elif ORPHAN in finalizers:
            policy = "Orphan"
        elif FOREGROUND in finalizers:
            policy = "Foreground"
        else:
            policy = "Background"
        api.delete_object(key, policy)

    # -- the namespace controller -------------------------------------------------------------------

    def _namespace(self, name: str) -> None:
        api = self.api
        ns = api.by_key((api.NAMESPACES, None, name))
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        for key in api.namespace_contents(name):
            obj = api.by_key(key)
            if obj is not None and not obj["metadata"].get("deletionTimestamp"):
                api.delete_object(key, "Background")
        if not api.namespace_contents(name):  # else each removal brings the controller back
            api.finalize_namespace(name)


def _deleting_in_foreground(obj: Obj | None) -> bool:
    meta = (obj or {}).get("metadata", {})
    return bool(meta.get("deletionTimestamp")) and FOREGROUND in (meta.get("finalizers") or [])
