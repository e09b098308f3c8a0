"""The index: an in-memory embedding matrix and lexical channel, kept equal to the Examples by the
index process (`blocklearn index`), which serves it through `blocklearn.search`."""
