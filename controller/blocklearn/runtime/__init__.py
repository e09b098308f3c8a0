"""The generic controller runtime: API client, informers, work queue, resync, leader election, retries.

Knows nothing of Blocks or Examples; the controller and the index build on it."""
