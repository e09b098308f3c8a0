"""The index sidecar: an in-memory embedding matrix kept fresh by a watch, served over HTTP."""
