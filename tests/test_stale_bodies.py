"""A reconcile that acts on a stale body must not bring back what a deletion collected.

The resync reconciles Blocks from a list that may be seconds old; a Block deleted meanwhile (and its
Example with it, by garbage collection) must stay gone. Found by `bench/soak.py --keep`: Examples of
deleted Blocks reappeared after each resync, with no owner left to collect them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import kopf

from blocklearn.embed.hashing import HashingEmbedder
from blocklearn.emulator.api import Emulator
from blocklearn.kube.client import CustomObjects, api_client
from blocklearn.operator.handlers import Reconcilers
from blocklearn.settings import Settings
from tests.conftest import Api, block_body, kubeconfig_for


async def test_a_stale_body_of_a_deleted_block_creates_no_example(
    api: Api, emulator: Emulator, tmp_path: Path
) -> None:
    client = CustomObjects(api_client(str(kubeconfig_for(emulator, tmp_path))))
    reconcilers = Reconcilers(Settings(), client, HashingEmbedder(64))
    log = logging.getLogger("test")
    _, created = await api.call("POST", api.path("blocks"), block_body("b1"))
    stale = kopf.Body(created)
    await reconcilers.reconcile_block(stale, log, 0)  # the Block is there: its Example is made
    assert [e["metadata"]["name"] for e in emulator.objects_of("blocklearn.dev/v1alpha1/examples")] == ["b1"]

    await api.call("DELETE", api.path("blocks", name="b1"))  # the Example goes with it
    assert emulator.objects_of("blocklearn.dev/v1alpha1/examples") == []
    await reconcilers.reconcile_block(stale, log, 0)  # e.g. a resync's list from before the delete
    assert emulator.objects_of("blocklearn.dev/v1alpha1/examples") == []

    # A new Block of the same name is another object: the old body must not make its Example either.
    await api.call("POST", api.path("blocks"), block_body("b1"))
    await reconcilers.reconcile_block(stale, log, 0)
    assert emulator.objects_of("blocklearn.dev/v1alpha1/examples") == []
