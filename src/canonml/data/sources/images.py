"""``images:DIR`` — one sub-folder per class of PNG/JPEG/BMP/GIF/WebP files, read with Pillow.

Classes are the sorted sub-folder names. Every image becomes greyscale ("L") when all of
them are greyscale, else RGB; ``data.image_size: [H, W]`` resizes them (bilinear).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from canonml.data.dataset import Dataset
from canonml.data.sources import SOURCES
from canonml.errors import DataError
from canonml.spec.data import DataSpec

if TYPE_CHECKING:
    from PIL import Image

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F")
LAYOUT = "one sub-folder per class, each holding .png/.jpg images (DIR/cat/1.png, DIR/dog/2.png)"


@SOURCES.register("images")
def load_images(arg: str, spec: DataSpec) -> Dataset:
    """Read every image under ``DIR/<class>/`` as ``(N, C, H, W)`` float32 raw pixel values."""
    classes, files, labels = _list_files(Path(arg))
    pixels = [_read(path, spec.image_size) for path in files]  # each (H, W, 1) or (H, W, 3)
    if spec.image_size is None:
        _check_sizes(pixels, files)
    channels = max(p.shape[2] for p in pixels)
    # A greyscale image among colour ones: repeat its channel, as Pillow's L → RGB does.
    x = np.stack([np.repeat(p, channels // p.shape[2], axis=2) for p in pixels])
    x = x.transpose(0, 3, 1, 2).astype(np.float32)  # (N, H, W, C) → (N, C, H, W)
    return Dataset(
        x=np.ascontiguousarray(x),
        y=np.asarray(labels, dtype=np.int64),
        kind="image",
        feature_names=[f"pixel_{i}" for i in range(int(np.prod(x.shape[1:])))],
        label_names=classes,
        pixel_max=255.0,
    )


def _list_files(root: Path) -> tuple[list[str], list[Path], list[int]]:
    """Class names, image paths and their class indices, in sorted order."""
    if not root.is_dir():
        raise DataError(f"directory not found; put {LAYOUT} in it", file=str(root))
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        found = ", ".join(p.name for p in folders) or "none"
        raise DataError(
            f"need at least 2 class folders, found {found}; put {LAYOUT} in it", file=str(root)
        )
    files: list[Path] = []
    labels: list[int] = []
    for label, folder in enumerate(folders):
        images = sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS
        )
        if not images:
            raise DataError(
                f"class folder holds no images ({', '.join(EXTENSIONS)}); add some or remove it",
                file=str(folder),
            )
        files += images
        labels += [label] * len(images)
    return [p.name for p in folders], files, labels


def _read(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """One image as ``(H, W, 1)`` grey or ``(H, W, 3)`` RGB uint8, resized to ``size`` (H, W)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            image = _convert(im)
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)  # (W, H)
            arr = np.array(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(
            f"cannot read image ({err}); replace or remove the file", file=str(path)
        ) from None
    except Image.DecompressionBombError as err:
        raise DataError(f"image too large ({err}); shrink or remove it", file=str(path)) from None
    return arr[:, :, None] if arr.ndim == 2 else arr


def _convert(im: Image.Image) -> Image.Image:
    """Greyscale modes to "L", everything else (palette, RGBA, CMYK, ...) to "RGB"."""
    if im.mode in GREY_MODES:
        return im if im.mode == "L" else im.convert("L")
    return im if im.mode == "RGB" else im.convert("RGB")


def _check_sizes(pixels: list[np.ndarray], files: list[Path]) -> None:
    """Without ``data.image_size`` every image must have the first image's height and width."""
    h, w = pixels[0].shape[:2]
    for p, path in zip(pixels, files, strict=True):
        if p.shape[:2] != (h, w):
            raise DataError(
                f"image is {p.shape[0]}x{p.shape[1]} (HxW) but '{files[0]}' is {h}x{w}; "
                f"set data.image_size: [{h}, {w}] to resize every image",
                file=str(path),
            )
