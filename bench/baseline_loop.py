"""Arm "baseline": the loop a user writes from the PyTorch tutorials, on our split CSVs.

A ``Dataset`` whose ``__getitem__`` opens the file with PIL and applies torchvision transforms
(small random rotation, resize, ToTensor, Normalize), ``DataLoader(shuffle=True,
num_workers=2)``, and the plain zero_grad / forward / loss / backward / step loop, validating
every epoch. Same model, optimizer, lr schedule, batch size and normalisation as the train stage.

Run inside a project folder (after split and build-dataset): ``python baseline_loop.py EPOCHS``.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from torchstages.device import resolve_device
from torchstages.models import build_model
from torchstages.params.base import load_section
from torchstages.params.train import TrainParams
from torchstages.training.optim import build_optimizer
from torchstages.training.schedule import LRSchedule


class ImageCSV(Dataset):
    def __init__(self, csv_path, root, classes, mode, transform):
        with open(csv_path, newline="") as f:
            self.rows = [(r["path"], r["label"]) for r in csv.DictReader(f)]
        self.root, self.mode, self.transform = Path(root), mode, transform
        self.index = {c: i for i, c in enumerate(classes)}

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        path, label = self.rows[i]
        img = Image.open(self.root / path).convert(self.mode)
        return self.transform(img), self.index[label]


def main() -> None:
    epochs = int(sys.argv[1])
    params = load_section(TrainParams, "train").model_copy(update={"epochs": epochs})
    meta = json.loads(Path("data/processed/meta.json").read_text())
    prep = meta["preprocessing"]
    size = tuple(prep["image_size"])
    mode = "L" if prep["color"] == "grayscale" else "RGB"
    device = resolve_device(params.device)
    torch.manual_seed(params.seed)

    normalize = T.Normalize(prep["mean"], prep["std"])
    train_tf = T.Compose(
        [T.RandomRotation(params.augment.rotation), T.Resize(size), T.ToTensor(), normalize]
    )
    val_tf = T.Compose([T.Resize(size), T.ToTensor(), normalize])
    classes = meta["classes"]
    train_ds = ImageCSV("data/splits/train.csv", "data/raw", classes, mode, train_tf)
    val_ds = ImageCSV("data/splits/val.csv", "data/raw", classes, mode, val_tf)
    train_loader = DataLoader(train_ds, batch_size=params.batch_size, shuffle=True, num_workers=2)
    val_loader = DataLoader(val_ds, batch_size=params.batch_size, shuffle=False, num_workers=2)

    model = build_model(params.model, len(prep["mean"]), size, len(classes)).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = build_optimizer(params, model)
    schedule = LRSchedule(params.schedule, optimizer, params.epochs, len(train_loader))
    step = 0
    schedule.apply(step)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for images, labels in train_loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            step += 1
            schedule.apply(step)
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in val_loader:
                images, labels = images.to(device), labels.to(device)
                correct += (model(images).argmax(1) == labels).sum().item()
    wall = time.perf_counter() - start
    print(
        json.dumps(
            {
                "arm": "baseline",
                "device": device.type,
                "epochs": epochs,
                "train_samples": len(train_ds),
                "wall_s": wall,
                "samples_per_s": len(train_ds) * epochs / wall,
                "val_accuracy": correct / len(val_ds),
            }
        )
    )


if __name__ == "__main__":
    main()
