"""Deployment: ONNX export verified against PyTorch, and prediction on image files."""
