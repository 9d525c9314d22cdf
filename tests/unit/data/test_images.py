"""``images:`` source: class folders of PNG/JPEG files written with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from canonml.data.sources import load_source
from canonml.errors import DataError
from canonml.spec.data import DataSpec


def save(path: Path, arr: np.ndarray) -> np.ndarray:
    """Write ``arr`` ((H, W) grey or (H, W, 3) RGB uint8) as an image; return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr


def grey(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def load(root: Path, size: tuple[int, int] | None = None):
    return load_source(DataSpec(source=f"images:{root}", image_size=size))


def test_greyscale_classes_in_sorted_order(tmp_path: Path) -> None:
    # Written out of order: classes and files are sorted by name.
    b2 = save(tmp_path / "bird" / "2.png", grey(5, 4, 1))
    c1 = save(tmp_path / "cat" / "1.png", grey(5, 4, 2))
    b1 = save(tmp_path / "bird" / "1.png", grey(5, 4, 3))
    a1 = save(tmp_path / "ant" / "x.png", grey(5, 4, 4))
    (tmp_path / "cat" / "notes.txt").write_text("not an image", encoding="utf-8")
    save(tmp_path / ".hidden" / "1.png", grey(9, 9, 5))
    ds = load(tmp_path)
    assert ds.label_names == ["ant", "bird", "cat"]
    assert ds.y.tolist() == [0, 1, 1, 2] and ds.y.dtype == np.int64
    assert ds.x.shape == (4, 1, 5, 4) and ds.x.dtype == np.float32
    for got, want in zip(ds.x, [a1, b1, b2, c1], strict=True):
        np.testing.assert_array_equal(got[0], want)
    assert ds.pixel_max == 255.0 and ds.kind == "image" and len(ds.feature_names) == 20


def test_one_colour_image_makes_all_rgb(tmp_path: Path) -> None:
    g = save(tmp_path / "a" / "g.png", grey(6, 6, 1))
    c = save(tmp_path / "b" / "c.png", rgb(6, 6, 2))
    ds = load(tmp_path)
    assert ds.x.shape == (2, 3, 6, 6)
    for ch in range(3):
        np.testing.assert_array_equal(ds.x[0, ch], g)  # grey repeated in R, G and B
    np.testing.assert_array_equal(ds.x[1], c.transpose(2, 0, 1))


def test_rgba_palette_and_jpeg_become_rgb(tmp_path: Path) -> None:
    rgba = np.dstack([rgb(4, 4, 1), np.full((4, 4), 128, np.uint8)])
    save(tmp_path / "a" / "t.png", rgba)
    Image.fromarray(rgb(4, 4, 2)).convert("P").save(tmp_path / "a" / "p.gif")
    save(tmp_path / "b" / "j.jpg", rgb(4, 4, 3))
    ds = load(tmp_path)
    assert ds.x.shape == (3, 3, 4, 4)
    np.testing.assert_array_equal(ds.x[1], rgba[:, :, :3].transpose(2, 0, 1))  # alpha dropped


def test_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    save(tmp_path / "a" / "1.png", grey(8, 8, 1))
    save(tmp_path / "b" / "2.png", grey(10, 6, 2))
    with pytest.raises(DataError) as err:
        load(tmp_path)
    msg = str(err.value)
    assert f"'{tmp_path / 'b' / '2.png'}'" in msg
    assert "image is 10x6 (HxW)" in msg and "data.image_size: [8, 8]" in msg


def test_image_size_resizes_bilinear(tmp_path: Path) -> None:
    a = save(tmp_path / "a" / "1.png", rgb(8, 8, 1))
    save(tmp_path / "b" / "2.png", np.full((10, 6), 77, np.uint8))
    ds = load(tmp_path, size=(6, 4))  # (H, W)
    assert ds.x.shape == (2, 3, 6, 4)
    want = np.asarray(Image.fromarray(a).resize((4, 6), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(ds.x[0], want.transpose(2, 0, 1))
    assert np.all(ds.x[1] == 77.0)  # a flat image stays flat in every channel


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:60]), "cannot read image"),
        (lambda p: p.write_bytes(b"definitely not a png"), "cannot read image"),
    ],
    ids=["truncated", "not-an-image"],
)
def test_unreadable_image_names_the_file(tmp_path: Path, content, fragment: str) -> None:
    save(tmp_path / "a" / "1.png", grey(4, 4, 1))
    bad = tmp_path / "b" / "broken.png"
    save(bad, grey(32, 32, 2))
    content(bad)
    with pytest.raises(DataError) as err:
        load(tmp_path)
    assert fragment in str(err.value) and f"'{bad}'" in str(err.value)


def test_bad_layouts(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="directory not found; put one sub-folder per class"):
        load(tmp_path / "missing")
    with pytest.raises(DataError, match="need at least 2 class folders, found none"):
        load(tmp_path)
    save(tmp_path / "only" / "1.png", grey(4, 4, 1))
    with pytest.raises(DataError, match="need at least 2 class folders, found only"):
        load(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="class folder holds no images") as err:
        load(tmp_path)
    assert f"'{tmp_path / 'empty'}'" in str(err.value)
