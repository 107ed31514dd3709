"""How images are read, in training, evaluation, the demo and `tools/check_dataset.py`: each PIL
mode is either read right or refused with the file named.

detectron2's `read_image` (PIL open, EXIF orientation, `convert_PIL_to_numpy`) converts with PIL's
`Image.convert`, which is right for 8-bit modes but clips 16- and 32-bit integers at 255: a 16-bit
grayscale PNG comes out all white. By the mode PIL opens a file in:

  * "1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr": read by detectron2's `read_image`,
    so bit-equal to it (alpha dropped, CMYK by PIL's formula without ICC profile). 16-bit RGB(A)
    PNGs and TIFFs are among them: PIL opens them as 8-bit "RGB(A)", keeping each value's high
    byte (v >> 8).
  * 16-bit gray: "I;16", "I;16B", "I;16L", "I;16N", and "I" from a PNG or PGM/PPM file (formats of
    at most 16 bits a sample: older Pillow opens 16-bit gray PNGs as "I", and PIL scales a PGM's
    maxval to 65535): reduced to 8 bits as PIL reduces 16-bit RGB, by the high byte, EXIF-oriented,
    then converted to `format` as detectron2 converts an "L" image. 0..65535 reads as 0..255; data
    of fewer bits in a 16-bit file (12-bit, say) reads dark, as it would in 16-bit RGB.
  * refused, with `ImageModeError` (a ValueError) naming the file and its mode: "F" (32-bit floats:
    0..1, 0..255 or metres, the file does not say), "I" from other formats (32-bit TIFF integers:
    the same), and every other mode ("LAB", "HSV", "RGBX", "La", "RGBa", ...: none is in a detection
    dataset we know of, so none has a test that its reading is right; PIL converts LAB to RGB but
    not to L, La to neither).

The decision needs the file's header only (`image_reading`), so the data loader can make it before
decoding.
"""

from typing import Optional

import numpy as np
from detectron2.data.detection_utils import convert_PIL_to_numpy
from detectron2.data.detection_utils import read_image as detectron2_read_image
from detectron2.utils.file_io import PathManager
from PIL import Image, ImageOps

# How an image is read (`image_reading`): by detectron2's read_image, or by the high byte of 16-bit gray.
DETECTRON2, HIGH_BYTE = "detectron2", "high byte"
DETECTRON2_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr"})
SIXTEEN_BIT_GRAY_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
# Formats whose mode "I" holds 16-bit values: they have no deeper gray.
SIXTEEN_BIT_I_FORMATS = frozenset({"PNG", "PPM"})
REFUSED_WHAT = {"F": "32-bit floating point", "I": "32-bit integers"}


class ImageModeError(ValueError):
    """An image whose PIL mode is not read; the message starts with the file's name in quotes."""


def reading_of(image: Image.Image, file_name: str) -> str:
    """How the opened (not yet decoded) `image` of `file_name` is read: DETECTRON2 or HIGH_BYTE.
    ImageModeError naming the file and its mode when it is refused (see the module docstring)."""
    if image.mode in DETECTRON2_MODES:
        return DETECTRON2
    if image.mode in SIXTEEN_BIT_GRAY_MODES or (image.mode == "I" and image.format in SIXTEEN_BIT_I_FORMATS):
        return HIGH_BYTE
    what = REFUSED_WHAT.get(image.mode, "not one of the modes read")
    raise ImageModeError(
        f"'{file_name}': PIL mode {image.mode!r} ({what}; a {image.format} file) is not read: convert the "
        f"image to 8-bit RGB or grayscale (read: modes {', '.join(sorted(DETECTRON2_MODES))} and 16-bit gray)"
    )


def image_reading(file_name: str) -> str:
    """`reading_of` the image at `file_name`, from its header (nothing decoded)."""
    with PathManager.open(file_name, "rb") as f, Image.open(f) as image:
        return reading_of(image, file_name)


def _high_byte_gray(image: Image.Image) -> Image.Image:
    """The 8-bit "L" image of a 16-bit gray one: each value's high byte, EXIF orientation applied."""
    image = ImageOps.exif_transpose(image)  # the orientation detectron2's read_image applies
    return Image.fromarray((np.asarray(image) >> 8).astype(np.uint8), mode="L")


def read_image(file_name: str, format: Optional[str] = None) -> np.ndarray:
    """The image at `file_name` as detectron2's `read_image(file_name, format)` returns it, 16-bit gray
    reduced to 8 bits (module docstring): for format "BGR" / "RGB" / "L", (H, W, 3 / 3 / 1) uint8;
    for "YUV-BT.601", (H, W, 3) float; for None, the array of the file's own mode.
    ImageModeError naming the file for a mode that is not read."""
    with PathManager.open(file_name, "rb") as f, Image.open(f) as image:
        if reading_of(image, file_name) == HIGH_BYTE:
            return convert_PIL_to_numpy(_high_byte_gray(image), format)
    return detectron2_read_image(file_name, format)
