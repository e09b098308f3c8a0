"""Thin layers over the Kubernetes API: client helpers and the local API emulator."""
