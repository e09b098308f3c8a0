"""The kopf operator: handlers for Blocks and Examples, and how the process runs them."""
