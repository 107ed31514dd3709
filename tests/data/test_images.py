"""Every PIL mode read right or refused by name (data/images.py), with one reading in training,
evaluation and tools/check_dataset.py (data/dataset_mapper.py): bit-equal to detectron2 where
detectron2 reads right, 16-bit gray by its high byte where detectron2 reads white."""

import re

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import DatasetMapper
from detectron2.data.detection_utils import read_image as detectron2_read_image
from detectron2.structures import BoxMode
from PIL import Image

from mask_rcnn_ext import Trainer, build_config
from mask_rcnn_ext.data.dataset_mapper import ImageModeDatasetMapper
from mask_rcnn_ext.data.images import DETECTRON2, HIGH_BYTE, ImageModeError, image_reading, read_image
from mask_rcnn_ext.engine.training_data import FileNamingMapper, build_checked_train_loader

from conftest import SYNTHETIC_CONFIG, import_tool

H, W = 12, 20
FORMATS = ["BGR", "RGB", "L", "YUV-BT.601", None]  # detectron2's INPUT.FORMATs, and the file's own mode
RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
# 16-bit values whose high byte differs from their rounding to 8 bits (v / 257), with both ends
GRAY16 = RNG.integers(0, 65536, size=(H, W), dtype=np.uint16)
GRAY16[0, :4] = [0, 255, 384, 65535]


def saved(image: Image.Image, path, **options) -> str:
    image.save(path, **options)
    return str(path)


def rgb16_png(path) -> str:
    """A 16-bit RGB PNG, each channel GRAY16 (PIL cannot write one)."""
    assert cv2.imwrite(str(path), np.dstack([GRAY16] * 3))
    return str(path)


def exif_rotated(path, array: np.ndarray, orientation: int) -> str:
    exif = Image.Exif()
    exif[274] = orientation  # EXIF Orientation
    return saved(Image.fromarray(array), path, exif=exif)


# Files PIL opens in each mode detectron2 reads right: (mode PIL opens the file in, writer).
DETECTRON2_FILES = {
    "1": ("1", lambda d: saved(Image.fromarray(RGB[:, :, 0] > 127), d / "a.png")),
    "L": ("L", lambda d: saved(Image.fromarray(RGB[:, :, 0]), d / "a.png")),
    "LA": ("LA", lambda d: saved(Image.fromarray(RGB[:, :, :2].copy(), mode="LA"), d / "a.png")),
    "P": ("P", lambda d: saved(Image.fromarray(RGB).quantize(16), d / "a.png")),
    "PA": ("PA", lambda d: saved(Image.fromarray(RGB).quantize(16).convert("PA"), d / "a.tif")),
    "RGB_png": ("RGB", lambda d: saved(Image.fromarray(RGB), d / "a.png")),
    "RGB_jpeg": ("RGB", lambda d: saved(Image.fromarray(RGB), d / "a.jpg", quality=90)),
    "RGBA": ("RGBA", lambda d: saved(Image.fromarray(np.dstack([RGB, RGB[:, :, 1]])), d / "a.png")),
    "CMYK_jpeg": ("CMYK", lambda d: saved(Image.fromarray(RGB).convert("CMYK"), d / "a.jpg")),
    "YCbCr_tiff": ("YCbCr", lambda d: saved(Image.fromarray(RGB).convert("YCbCr"), d / "a.tif")),
    # PIL opens 16-bit RGB as 8-bit RGB itself (the high byte of each value)
    "RGB_16_bit_png": ("RGB", lambda d: rgb16_png(d / "a.png")),
    "RGB_jpeg_exif_rotated": ("RGB", lambda d: exif_rotated(d / "a.jpg", RGB, orientation=6)),
}


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("kind", list(DETECTRON2_FILES))
def test_modes_detectron2_reads_right_are_read_bit_equal(tmp_path, kind, format):
    mode, write = DETECTRON2_FILES[kind]
    path = write(tmp_path)
    with Image.open(path) as image:
        assert image.mode == mode
    ours, theirs = read_image(path, format), detectron2_read_image(path, format)
    assert image_reading(path) == DETECTRON2
    assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
    if kind == "RGB_jpeg_exif_rotated":
        assert ours.shape[:2] == (W, H)  # turned upright


def gray16_png(path) -> str:
    return saved(Image.fromarray(GRAY16), path)


def pgm(path) -> str:
    """A 16-bit PGM (maxval 65535), which PIL opens as mode "I"."""
    path.write_bytes(f"P5\n{W} {H}\n65535\n".encode() + GRAY16.astype(">u2").tobytes())
    return str(path)


# Files of 16-bit gray in each mode PIL opens them in: (mode, writer).
SIXTEEN_BIT_FILES = {
    "I;16_png": ("I;16", gray16_png),
    "I;16_tiff": ("I;16", lambda p: saved(Image.fromarray(GRAY16), p.with_suffix(".tif"))),
    "I;16B_tiff": ("I;16B", lambda p: saved(Image.fromarray(GRAY16.astype(">u2")), p.with_suffix(".tif"))),
    "I_pgm": ("I", lambda p: pgm(p.with_suffix(".pgm"))),
}


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("kind", list(SIXTEEN_BIT_FILES))
def test_16_bit_gray_is_read_by_its_high_byte(tmp_path, kind, format):
    """Read as detectron2 reads the 8-bit gray image of each value's high byte (not all white, as
    detectron2 reads it), which is how PIL reads a 16-bit RGB image of the same values."""
    mode, write = SIXTEEN_BIT_FILES[kind]
    path = write(tmp_path / "gray16.png")
    with Image.open(path) as image:
        assert image.mode == mode
    eight_bit = saved(Image.fromarray((GRAY16 >> 8).astype(np.uint8)), tmp_path / "gray8.png")
    rgb16 = rgb16_png(tmp_path / "rgb16.png")
    ours = read_image(path, format)
    assert image_reading(path) == HIGH_BYTE
    assert np.array_equal(ours, detectron2_read_image(eight_bit, format))
    if format is not None:
        assert np.array_equal(ours, detectron2_read_image(rgb16, format))
    if format == "L":
        assert ours[0, :4, 0].tolist() == [0, 0, 1, 255]
        assert (detectron2_read_image(path, format) == 255).sum() > 0.9 * H * W  # what detectron2 reads


def test_16_bit_gray_is_turned_upright_by_its_exif_orientation(tmp_path):
    path = exif_rotated(tmp_path / "gray16.png", GRAY16, orientation=6)
    eight_bit = exif_rotated(tmp_path / "gray8.png", (GRAY16 >> 8).astype(np.uint8), orientation=6)
    ours = read_image(path, "L")
    assert ours.shape == (W, H, 1) and np.array_equal(ours, detectron2_read_image(eight_bit, "L"))


# Modes without an 8-bit reading: (mode, writer).
REFUSED_FILES = {
    "F": lambda d: saved(Image.fromarray(GRAY16.astype(np.float32) / 65535), d / "float.tif"),
    "I": lambda d: saved(Image.fromarray(GRAY16.astype(np.int32)), d / "int32.tif"),
    "LAB": lambda d: saved(Image.new("LAB", (W, H), (50, 100, 150)), d / "lab.tif"),
}


@pytest.mark.parametrize("mode", list(REFUSED_FILES))
def test_modes_without_an_8_bit_reading_are_refused_by_name(tmp_path, mode):
    path = REFUSED_FILES[mode](tmp_path)
    message = re.escape(f"'{path}': PIL mode '{mode}' (") + r".* is not read"
    for read in (image_reading, read_image):
        with pytest.raises(ImageModeError, match=message):
            read(path)


@pytest.fixture(scope="module")
def cfg():
    return build_config(SYNTHETIC_CONFIG, ["MODEL.KEYPOINT_ON", "False"])


def record(file_name: str, height: int = H, width: int = W) -> dict:
    box = [2.0, 2.0, 12.0, 9.0]
    polygon = [box[0], box[1], box[2], box[1], box[2], box[3], box[0], box[3]]
    annotation = dict(bbox=box, bbox_mode=BoxMode.XYXY_ABS, category_id=1, segmentation=[polygon], iscrowd=0)
    return {"file_name": file_name, "height": height, "width": width, "image_id": 1, "annotations": [annotation]}


def assert_mapped_equal(ours: dict, theirs: dict) -> None:
    """The same keys and values; tensors, and the tensors of Instances' fields, equal to the last bit."""
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        if isinstance(value, torch.Tensor):
            assert value.dtype == ours[key].dtype and torch.equal(ours[key], value), key
        elif key == "instances":
            assert ours[key].image_size == value.image_size
            fields, expected = ours[key].get_fields(), value.get_fields()
            assert fields.keys() == expected.keys()
            for name, field in expected.items():
                tensor = field if isinstance(field, torch.Tensor) else field.tensor
                assert torch.equal(tensor, fields[name] if isinstance(field, torch.Tensor) else fields[name].tensor)
        else:
            assert ours[key] == value, key


def mapped(mapper, image_record: dict, seed: int = 0) -> dict:
    np.random.seed(seed)  # detectron2's augmentations draw from numpy's global generator
    return mapper(image_record)


@pytest.mark.parametrize("is_train", [True, False], ids=["train", "test"])
@pytest.mark.parametrize("name", ["a.png", "a.jpg"])
def test_mapper_equals_detectron2s_on_ordinary_images(tmp_path, cfg, is_train, name):
    path = saved(Image.fromarray(RGB), tmp_path / name)
    for seed in range(3):  # different resizes and flips
        ours = mapped(ImageModeDatasetMapper(cfg, is_train=is_train), record(path), seed)
        assert_mapped_equal(ours, mapped(DatasetMapper(cfg, is_train=is_train), record(path), seed))


def test_16_bit_gray_is_trained_and_evaluated_on_its_8_bit_reading(tmp_path, registered):
    """Through the training loader (`build_checked_train_loader`) and the test loader
    (`Trainer.build_test_loader`), as detectron2 maps the 8-bit gray image of its high bytes."""
    gray16 = gray16_png(tmp_path / "gray16.png")
    gray8 = saved(Image.fromarray((GRAY16 >> 8).astype(np.uint8)), tmp_path / "gray8.png")
    name = registered("test_images_16_bit_gray", [record(gray16)])
    options = ["MODEL.KEYPOINT_ON", "False", "DATASETS.TRAIN", f"('{name}',)", "DATASETS.TEST", f"('{name}',)"]
    cfg = build_config(SYNTHETIC_CONFIG, [*options, "DATALOADER.NUM_WORKERS", "0", "SOLVER.IMS_PER_BATCH", "1"])

    train_loader = iter(build_checked_train_loader(cfg))
    for seed in range(3):
        (trained,) = mapped(lambda _: next(train_loader), None, seed)
        expected = mapped(DatasetMapper(cfg, is_train=True), record(gray8), seed)
        assert_mapped_equal(trained, {**expected, "file_name": gray16})
    ((evaluated,),) = list(Trainer.build_test_loader(cfg, name))  # one batch of one image
    assert_mapped_equal(evaluated, {**mapped(DatasetMapper(cfg, is_train=False), record(gray8)), "file_name": gray16})


def test_refused_mode_is_named_by_the_training_and_test_mappers(tmp_path, cfg):
    path = REFUSED_FILES["F"](tmp_path)
    named = re.escape(f"'{path}': PIL mode 'F' (32-bit floating point")
    with pytest.raises(RuntimeError, match=re.escape(f"Cannot load the training image '{path}'") + ".*" + named):
        FileNamingMapper(ImageModeDatasetMapper(cfg, is_train=True))(record(path))
    with pytest.raises(ImageModeError, match=named):
        ImageModeDatasetMapper(cfg, is_train=False)(record(path))


def test_check_dataset_reads_16_bit_gray_and_names_refused_modes(tmp_path, registered, capsys):
    gray16 = gray16_png(tmp_path / "gray16.png")
    float32 = REFUSED_FILES["F"](tmp_path)
    records = [record(gray16), record(float32), record(gray16, height=H + 1)]  # the last: decoded, its size checked
    name = registered("test_images_checked", records)
    assert import_tool("check_dataset").main([name]) == 1
    text = capsys.readouterr().out
    assert f"{name}: 3 images, 3 annotations: 2 errors\n" in text
    assert f"  '{float32}': PIL mode 'F' (32-bit floating point; a TIFF file) is not read" in text
    assert f"  '{gray16}': image is 12x20 but the record says 13x20\n" in text
