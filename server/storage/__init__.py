"""Storage: one module per aggregate, each a set of named one-transaction operations.

No SQL lives outside this package; no rules live inside it.
"""
