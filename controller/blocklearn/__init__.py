"""Blocklearn: an operator that turns corrected assistant cells into few-shot examples."""

GROUP = "blocklearn.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
BLOCKS = "blocks"
EXAMPLES = "examples"

__version__ = "0.1.0"
