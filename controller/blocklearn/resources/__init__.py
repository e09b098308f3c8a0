"""The resources: the shapes of Blocks and Examples and their conditions; the CRDs are generated from them."""
