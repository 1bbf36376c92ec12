"""The table data kind: one CSV or Parquet file in ``data/raw``, one row per sample.

Split, build, model, evaluation and export for tables live here, one module per stage concern,
so editing them never touches the image path's code.
"""
