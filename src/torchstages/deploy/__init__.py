"""Deployment: exports verified against PyTorch (export.py, parity.py, card.py), loading them
(runtime.py), ``predict`` and ``serve``. What depends on the data kind comes from the kind: a
:class:`~torchstages.deploy.exportable.KindExport` (the wrapped module, the test split as named
inputs, reference outputs, parity semantics, the card's own lines; images in exportable.py, the
other kinds in their ``export.py``) and a reader in readers.py (raw bytes -> named input arrays;
no torch)."""
