"""Every path the pipeline reads or writes, defined once and mirrored in ``dvc.yaml``."""

from pathlib import Path

PARAMS = Path("params.yaml")
RAW = Path("data/raw")
SPLITS = Path("data/splits")
PROCESSED = Path("data/processed")
META = PROCESSED / "meta.json"
MODELS = Path("models")
WEIGHTS = MODELS / "model.safetensors"
MODEL_CARD = MODELS / "model.json"
CHECKPOINT = MODELS / "checkpoint.pt"
TRAIN_LIVE = Path("dvclive/train")
METRICS = Path("metrics")
PLOTS = Path("plots")
# per-sample predictions of validate and test, in git: `torchstages compare` pairs two revisions' files
PREDICTIONS = Path("predictions")
REPORTS = Path("reports")
EXPORT_DIR = MODELS / "export"
# one file per export format (params export.formats); the int8 file is ONNX too, for ONNX Runtime
EXPORT_FILES = {"onnx": "model.onnx", "pt2": "model.pt2", "onnx-int8": "model.int8.onnx"}
ONNX_MODEL = EXPORT_DIR / EXPORT_FILES["onnx"]
EXPORT_CARD = EXPORT_DIR / "MODEL_CARD.md"

SPLIT_NAMES = ("train", "val", "test")
