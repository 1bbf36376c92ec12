import numpy as np
import pytest

from torchstages.data.build import build_dataset
from torchstages.data.split import split_dataset
from torchstages.data.store import load_meta, load_split
from torchstages.errors import UserError
from torchstages.params.build_dataset import BuildDatasetParams


@pytest.fixture
def splits_dir(tmp_path, image_folder):
    split_dataset(image_folder, tmp_path / "splits", {"train": 0.6, "val": 0.2, "test": 0.2}, 0)
    return tmp_path / "splits"


@pytest.mark.parametrize("workers", [1, 2])
def test_arrays_labels_and_train_only_statistics(tmp_path, image_folder, splits_dir, workers):
    params = BuildDatasetParams(image_size=(6, 5), color="rgb", workers=workers)
    counts = build_dataset(params, image_folder, splits_dir, tmp_path / "out")
    meta = load_meta(tmp_path / "out")
    assert meta["classes"] == ["class0", "class1", "class2"]
    assert meta["channels"] == 3 and meta["preprocessing"]["image_size"] == [6, 5]
    images, labels = load_split(tmp_path / "out", "train")
    assert images.shape == (counts["train"], 3, 6, 5) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and set(labels) == {0, 1, 2}
    # mean/std are the train split's own, not the whole dataset's
    expected = images.astype(np.float64).mean(axis=(0, 2, 3)) / 255
    assert np.allclose(meta["preprocessing"]["mean"], expected, atol=1e-6)
    spread = images.astype(np.float64).std(axis=(0, 2, 3)) / 255
    assert np.allclose(meta["preprocessing"]["std"], spread, atol=1e-5)
    all_pixels = np.concatenate(
        [load_split(tmp_path / "out", s)[0] for s in ("train", "val", "test")]
    )
    assert not np.allclose(
        all_pixels.astype(np.float64).mean(axis=(0, 2, 3)) / 255, expected, atol=1e-7
    )


def test_rebuild_is_byte_identical_for_any_worker_count(tmp_path, image_folder, splits_dir):
    one, two = tmp_path / "one", tmp_path / "two"
    build_dataset(BuildDatasetParams(image_size=8, workers=1), image_folder, splits_dir, one)
    build_dataset(BuildDatasetParams(image_size=8, workers=2), image_folder, splits_dir, two)
    for f in sorted(p.name for p in one.iterdir()):
        assert (one / f).read_bytes() == (two / f).read_bytes(), f


def test_unreadable_image_names_the_file_and_writes_nothing(tmp_path, image_folder, splits_dir):
    victim = image_folder / (splits_dir / "val.csv").read_text().splitlines()[1].split(",")[0]
    victim.write_bytes(victim.read_bytes()[:40])  # truncated PNG
    out = tmp_path / "out"
    with pytest.raises(UserError, match=rf"{victim.name}: cannot decode image"):
        build_dataset(BuildDatasetParams(image_size=8, workers=1), image_folder, splits_dir, out)
    assert not out.exists()
    assert not list(tmp_path.glob(".*tmp"))


def test_file_changed_after_the_split_is_an_error(tmp_path, image_folder, splits_dir):
    # build-dataset depends on the split CSVs, not on data/raw: the recorded sha256 must still hold
    victim = image_folder / (splits_dir / "train.csv").read_text().splitlines()[1].split(",")[0]
    other = next(p for p in sorted(image_folder.rglob("*.png")) if p != victim)
    victim.write_bytes(other.read_bytes())  # still a valid image, different bytes
    with pytest.raises(UserError, match=rf"{victim.name}: changed since the split stage"):
        build_dataset(
            BuildDatasetParams(image_size=8, workers=1), image_folder, splits_dir, tmp_path / "o"
        )
