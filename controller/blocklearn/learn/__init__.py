"""Block -> Example: the learning rule and the redaction of secrets it applies (pure, no I/O)."""
