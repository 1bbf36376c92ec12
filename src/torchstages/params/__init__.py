"""Typed params: one pydantic model per ``params.yaml`` section, in one module per section.

Each stage depends (in ``dvc.yaml``) on ``base.py`` and its own section's module only, so
editing the export params model never retrains.
"""
