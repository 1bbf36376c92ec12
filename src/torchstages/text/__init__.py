"""The text data kind: one CSV/TSV/Parquet file in ``data/raw`` with a text column and a label
column, one row per text (``split.kind: text``).

Reading reuses the table reader; split, tokenizer, build, evaluation, export and predict for
texts live here, one module per stage concern, so editing them never touches the image or table
path's code.
"""
