"""Data: discovering files, splitting rows, decoding images into arrays, feeding batches."""
