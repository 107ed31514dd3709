"""detectron2's DatasetMapper, its images read as `data.images` reads them: bit-equal to
detectron2's mapping for the modes detectron2 reads right, 16-bit gray by its high byte, any other
mode refused with the file named.

`DatasetMapper.__call__` (the same in detectron2 v0.6 and main) reads the image from the record's
`file_name` with `detection_utils.read_image` and takes an image no other way. Rather than copy its
body to change that one call, images of the modes it reads right go through it untouched, and a
16-bit gray image reaches it under a name of `HighByteHandler`'s: detectron2 opens file names with
its PathManager, whose handlers are its public way to serve files from elsewhere (in both versions),
and that handler serves the 8-bit reading `images.read_image` makes. Nothing of detectron2 is patched.
"""

import io

from detectron2.data import DatasetMapper
from detectron2.utils.file_io import PathHandler, PathManager
from PIL import Image

from .images import DETECTRON2, image_reading, read_image


class HighByteHandler(PathHandler):
    """Opens `PREFIX + path` as an uncompressed 8-bit grayscale PGM of the 16-bit gray image at `path`,
    read by `images.read_image`: what detectron2 reads back from it is that reading, bit for bit."""

    PREFIX = "mask_rcnn_ext-high-byte://"

    def _get_supported_prefixes(self) -> list[str]:
        return [self.PREFIX]

    def _open(self, path: str, mode: str = "rb", buffering: int = -1, **kwargs) -> io.BytesIO:
        gray = read_image(path[len(self.PREFIX) :], format="L")[:, :, 0]
        encoded = io.BytesIO()
        Image.fromarray(gray).save(encoded, format="PPM")  # lossless and cheap to write and to read back
        encoded.seek(0)
        return encoded


PathManager.register_handler(HighByteHandler())


class ImageModeDatasetMapper(DatasetMapper):
    """A DatasetMapper (the same arguments and outputs) whose images are read as `images.read_image`
    reads them; ImageModeError naming the file for a mode that is not read (`images`)."""

    def __call__(self, dataset_dict: dict) -> dict:
        file_name = dataset_dict["file_name"]
        if image_reading(file_name) == DETECTRON2:  # a header read: the mode only
            return super().__call__(dataset_dict)
        mapped = super().__call__({**dataset_dict, "file_name": HighByteHandler.PREFIX + file_name})
        mapped["file_name"] = file_name
        return mapped
