"""Deployment: exports verified against PyTorch (export.py, card.py), loading them (runtime.py),
``predict`` and ``serve``. What depends on the data kind lives in two modules only:
exportable.py (the wrapped module, its named inputs, a split as inputs; torch side) and
readers.py (raw bytes -> named input arrays; no torch)."""
