"""Bad training data is caught before training (data/checks.py, engine/training_data.py,
tools/check_dataset.py): each case is an error or a counted skip, named by file and annotation."""

import copy
import json
import math
import re

import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.data import DatasetMapper
from detectron2.data.datasets import register_coco_instances
from detectron2.structures import BoxMode
from PIL import Image

from mask_rcnn_ext import build_config
from mask_rcnn_ext.data.checks import check_records
from mask_rcnn_ext.engine.training_data import FileNamingMapper, checked_training_records

from conftest import SYNTHETIC_CONFIG, import_tool

H, W = 20, 30
SQUARE = [2.0, 2.0, 12.0, 2.0, 12.0, 12.0, 2.0, 12.0]


def image(tmp_path, name="a.png", size=(W, H)):
    path = tmp_path / name
    Image.new("RGB", size, (90, 120, 30)).save(path)
    return str(path)


def obj(**changes):
    annotation = {
        "bbox": [2, 2, 10, 10],
        "bbox_mode": BoxMode.XYWH_ABS,
        "category_id": 1,
        "segmentation": [SQUARE],
        "iscrowd": 0,
        "keypoints": [5, 5, 2] * 2,
    }
    annotation.update(changes)
    return annotation


def record(file_name, *annotations, height=H, width=W):
    return {"file_name": file_name, "height": height, "width": width, "image_id": 1, "annotations": list(annotations)}


def check(records, read_images=True):
    return check_records(records, num_classes=3, num_keypoints=2, read_images=read_images)


def test_sound_records_pass_unchanged(tmp_path):
    records = [record(image(tmp_path), obj(), obj(category_id=0, bbox=[0, 0, 30, 20]))]
    original = copy.deepcopy(records)
    cleaned, report = check(records)
    assert report.errors == [] and not report.skipped and cleaned == records == original


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: record(str(p / "gone.png"), obj()), r"gone.png': image file missing"),
        (lambda p: record(image(p, size=(W, H + 1)), obj()), r"image is 21x30 but the record says 20x30"),
        (lambda p: record(image(p), obj(category_id=3)), r"annotation #0: category_id 3 is not one of the 3 classes"),
        (
            lambda p: record(image(p), obj(), obj(id=77, keypoints=[1, 1, 2])),
            r"annotation #1, id 77: 3 keypoint values, expected 3 x 2",
        ),
        (
            lambda p: record(
                image(p), obj(segmentation=mask_util.encode(np.zeros((H, W + 1, 1), np.uint8, order="F"))[0])
            ),
            r"annotation #0: RLE of size \[20, 31\] in an image of 20x30",
        ),
    ],
    ids=["missing_image", "size_differs", "unknown_category", "keypoint_count", "rle_size"],
)
def test_errors_name_file_and_annotation(tmp_path, make, message):
    _, report = check([make(tmp_path)])
    assert len(report.errors) == 1 and re.search(message, report.errors[0]), report.errors


@pytest.mark.parametrize("content", [b"not a png at all", None], ids=["garbage", "truncated"])
def test_unreadable_images_are_errors(tmp_path, content):
    path = tmp_path / "bad.png"
    Image.new("RGB", (W, H), (1, 2, 3)).save(path)
    data = path.read_bytes()
    path.write_bytes(content if content is not None else data[: len(data) // 2])
    _, report = check([record(str(path), obj())])
    assert len(report.errors) == 1 and "bad.png': unreadable image" in report.errors[0]
    _, report = check([record(str(path), obj())], read_images=False)  # existence only: the training start
    assert report.errors == []


def test_skipped_parts_are_dropped_and_counted(tmp_path):
    path = image(tmp_path)
    annotations = [
        obj(segmentation=[SQUARE, [1.0, 1.0, 5.0, 1.0]]),  # a 2-point polygon: dropped, the square stays
        obj(segmentation=[[1.0, 1.0, 5.0, 1.0]]),  # no polygon left: the object goes
        obj(segmentation=[[1.0, 1.0, math.nan, 1.0, 5.0, 5.0]]),  # non-finite
        obj(bbox=[40, 2, 5, 5]),  # outside the image
        obj(bbox=[3, 3, 0, 5]),  # no area
        obj(bbox=[25, 15, 10, 10]),  # partly outside: kept
        obj(keypoints=[5, 5, 2, 31, 5, 2]),  # second keypoint outside: made unlabelled
    ]
    cleaned, report = check([record(path, *annotations)])
    assert report.errors == []
    kept = cleaned[0]["annotations"]
    assert len(kept) == 3
    assert kept[0]["segmentation"] == [SQUARE] and kept[1]["bbox"] == [25, 15, 10, 10]
    assert kept[2]["keypoints"] == [5, 5, 2, 31, 5, 0]
    assert dict(report.skipped) == {
        "polygon with fewer than 3 points": 2,
        "object without a polygon of 3 points": 1,
        "object with non-finite polygon coordinates": 1,
        "object whose box has no area inside the image": 2,
        "labelled keypoint outside the image (made unlabelled)": 1,
    }
    assert "annotation #3" in report.examples["object whose box has no area inside the image"][0]


def test_training_start_refuses_errors_and_cleans_the_rest(tmp_path, registered):
    bad = registered("test_checks_bad", [record(str(tmp_path / "gone.png"), obj())])
    cfg = build_config(SYNTHETIC_CONFIG, ["MODEL.KEYPOINT_ON", "False", "DATASETS.TRAIN", f"('{bad}',)"])
    with pytest.raises(ValueError, match=r"DATASETS.TRAIN 'test_checks_bad' cannot be used:\n1 errors\n.*gone.png"):
        checked_training_records(cfg)
    path = image(tmp_path)
    fine = registered(
        "test_checks_fine", [record(path, obj(), obj(bbox=[40, 2, 5, 5])), record(path, obj(bbox=[3, 3, 0, 5]))]
    )
    cfg = build_config(SYNTHETIC_CONFIG, ["MODEL.KEYPOINT_ON", "False", "DATASETS.TRAIN", f"('{fine}',)"])
    records = checked_training_records(cfg)
    assert [len(r["annotations"]) for r in records] == [1]  # the emptied image is not trained on


def test_an_image_failing_mid_training_is_named(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG broken")
    cfg = build_config(SYNTHETIC_CONFIG, ["MODEL.KEYPOINT_ON", "False"])
    mapper = FileNamingMapper(DatasetMapper(cfg, is_train=True))
    with pytest.raises(RuntimeError, match=r"Cannot load the training image '.*broken.png'"):
        mapper(record(str(path), obj()))


REGISTRATION = """
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from mask_rcnn_ext.data import synthetic_metadata
DatasetCatalog.register("tool_checked", lambda: [{{"file_name": {path!r}, "height": 20, "width": 30, "image_id": 1,
    "annotations": [{{"bbox": [2, 2, 5, 5], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 9}}]}}])
MetadataCatalog.get("tool_checked").set(**synthetic_metadata())
"""


def test_check_dataset_tool(tmp_path, monkeypatch, capsys):
    (tmp_path / "register_checked.py").write_text(REGISTRATION.format(path=image(tmp_path, size=(W, H + 5))))
    monkeypatch.syspath_prepend(str(tmp_path))  # where --import finds the user's module
    assert import_tool("check_dataset").main(["tool_checked", "--import", "register_checked"]) == 1
    text = capsys.readouterr().out
    assert "tool_checked: 1 images, 1 annotations: 2 errors" in text
    assert "image is 25x30 but the record says 20x30" in text and "category_id 9 is not one of the 7 classes" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["no_such_dataset"], "dataset 'no_such_dataset' is not registered"),
        (["synthetic_val", "--import", "no_such_module"], "--import no_such_module: No module named 'no_such_module'"),
    ],
)
def test_check_dataset_tool_names_what_it_cannot_check(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        import_tool("check_dataset").main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def coco_json(tmp_path, text: str) -> str:
    path = tmp_path / "instances.json"
    path.write_text(text)
    return str(path)


def test_check_dataset_tool_checks_a_dataset_registered_as_detectron2_documents(tmp_path, capsys):
    """`register_coco_instances(name, {}, json, images)`: the classes come from the json's categories,
    filled in the metadata only when the json is loaded."""
    image(tmp_path, size=(W, H + 5))
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "height": H, "width": W}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [2, 2, 5, 5], "area": 25, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    register_coco_instances("tool_checked_coco", {}, coco_json(tmp_path, json.dumps(coco)), str(tmp_path))
    assert import_tool("check_dataset").main(["tool_checked_coco"]) == 1
    text = capsys.readouterr().out
    assert "tool_checked_coco: 1 images, 1 annotations: 1 error" in text
    assert "image is 25x30 but the record says 20x30" in text


def test_check_dataset_tool_names_the_json_it_cannot_load(tmp_path, capsys):
    json_file = coco_json(tmp_path, '{"images": [}')
    register_coco_instances("tool_checked_broken_json", {}, json_file, str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        import_tool("check_dataset").main(["tool_checked_broken_json"])
    message = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert f"dataset 'tool_checked_broken_json' ({json_file}) cannot be loaded:" in message
    assert f"'{json_file}' cannot be read as JSON: JSONDecodeError: Expecting value: line 1 column 13" in message
