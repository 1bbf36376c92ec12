import numpy as np
import pytest
from PIL import Image

from torchstages.data.images import Preprocessing, decode_image
from torchstages.errors import UserError


def load_image(path, prep):
    return decode_image(path.read_bytes(), path, prep)


def _prep(**kw):
    base = {"image_size": (4, 6), "color": "rgb", "resize": "stretch", "interpolation": "nearest"}
    return Preprocessing(**{**base, **kw})


def test_rgb_is_channels_first_in_rgb_order(tmp_path):
    array = np.zeros((4, 6, 3), dtype=np.uint8)
    array[..., 0] = 200  # red
    Image.fromarray(array).save(tmp_path / "red.png")
    out = load_image(tmp_path / "red.png", _prep())
    assert out.shape == (3, 4, 6) and out.dtype == np.uint8
    assert (out[0] == 200).all() and (out[1:] == 0).all()


def test_grayscale_and_palette_and_alpha_images_convert(tmp_path):
    Image.new("P", (10, 10), 3).save(tmp_path / "p.png")
    Image.new("RGBA", (10, 10), (10, 20, 30, 0)).save(tmp_path / "a.png")
    for name in ("p.png", "a.png"):
        assert load_image(tmp_path / name, _prep(color="grayscale")).shape == (1, 4, 6)
        assert load_image(tmp_path / name, _prep(color="rgb")).shape == (3, 4, 6)


def test_exif_orientation_is_applied(tmp_path):
    # stored 6 wide x 4 high, EXIF says "rotate 90": the upright image is 4 wide x 6 high
    img = Image.new("L", (6, 4), 0)
    img.putpixel((0, 0), 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(tmp_path / "rot.jpg", exif=exif, quality=100)
    out = load_image(tmp_path / "rot.jpg", _prep(color="grayscale", image_size=(6, 4)))
    assert out.shape == (1, 6, 4)
    assert out[0, 0, -1] > 128  # the marked corner moved to the top right


@pytest.mark.parametrize("mode", ["stretch", "crop", "pad"])
def test_every_resize_mode_gives_the_target_size(tmp_path, mode):
    Image.new("RGB", (50, 20), (255, 255, 255)).save(tmp_path / "wide.png")
    out = load_image(tmp_path / "wide.png", _prep(resize=mode, image_size=(10, 10)))
    assert out.shape == (3, 10, 10)
    if mode == "pad":  # letterboxed: black bars top and bottom
        assert out[:, 0].max() == 0 and out[:, 5].min() == 255
    else:
        assert out.min() == 255


def test_large_jpeg_uses_reduced_decoding_but_keeps_content(tmp_path):
    big = np.zeros((800, 800, 3), dtype=np.uint8)
    big[:, 400:] = 255
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=95)
    out = load_image(tmp_path / "big.jpg", _prep(image_size=(16, 16), interpolation="bilinear"))
    assert out.shape == (3, 16, 16)
    assert out[:, :, :7].max() < 30 and out[:, :, 9:].min() > 225


def test_corrupt_file_error_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(UserError, match=r"broken.png: cannot decode image"):
        load_image(bad, _prep())


def test_preprocessing_round_trips_through_a_dict():
    prep = _prep(mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 3.0))
    assert Preprocessing.from_dict(prep.to_dict()) == prep
    assert prep.channels == 3 and _prep(color="grayscale").channels == 1
