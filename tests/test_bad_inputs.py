"""A corpus of bad inputs through the public tools, each run in-process: the exit code, the culprit
named in what the user sees (file, annotation id, config key), and every file of an earlier run
byte-identical afterwards.

The earlier run is a 2-iteration training of the demo's config on 10 images (`earlier_run`); each
case points its tool at that run's OUTPUT_DIR where it takes one. Bad inputs are built small in
tmp_path, and each case stops at the start-up checks, before any iteration.
"""

import copy
import functools
import hashlib
import json
import os
import shutil
from typing import Callable

import numpy as np
import pytest
import torch
from detectron2.data.datasets import register_coco_instances
from PIL import Image

from mask_rcnn_ext import build_config
from mask_rcnn_ext.data.cityscapes import register_cityscapes_instances
from mask_rcnn_ext.data.synthetic_cityscapes import SyntheticCityscapesSpec, write_split
from mask_rcnn_ext.engine.training_data import checked_training_records

from conftest import SYNTHETIC_CONFIG, SYNTHETIC_VAL_MINI, import_tool, run_tool_in_process

# The earlier run: the demo's model on the 10-image split at 128 px, 2 iterations, no evaluation
TINY_RUN = [
    "SOLVER.MAX_ITER", "2", "SOLVER.CHECKPOINT_PERIOD", "1", "SOLVER.STEPS", "()", "SOLVER.WARMUP_ITERS", "1",
    "DATASETS.TRAIN", f"('{SYNTHETIC_VAL_MINI}',)", "DATASETS.TEST", "()", "INPUT.MIN_SIZE_TRAIN", "(128,)",
    "INPUT.MAX_SIZE_TRAIN", "200", "DATALOADER.NUM_WORKERS", "0",
]  # fmt: skip
# A model of 2 classes without keypoints, for the COCO jsons built here
TWO_CLASSES = ["MODEL.KEYPOINT_ON", "False", "MODEL.ROI_HEADS.NUM_CLASSES", "2"]


def file_hashes(folder) -> dict[str, str]:
    hashes = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                hashes[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return hashes


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory) -> str:
    """A finished run's OUTPUT_DIR (config.yaml, log.txt, metrics.json, checkpoints)."""
    output_dir = str(tmp_path_factory.mktemp("earlier") / "run")
    train_net = import_tool("train_net")
    train_net.main(train_net.parse_args(["--config-file", SYNTHETIC_CONFIG, *TINY_RUN, "OUTPUT_DIR", output_dir]))
    return output_dir


# ---- inputs


def write_image(path, size=(48, 64), mode="RGB") -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    array = np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)
    Image.fromarray(array).convert(mode).save(path)
    return str(path)


def coco_json() -> dict:
    """A valid COCO instances json: 2 images of 48x64, 2 categories, 3 objects with polygons."""
    square = [[10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0, 30.0]]
    return {
        "images": [{"id": i, "file_name": f"{i}.png", "height": 48, "width": 64} for i in (1, 2)],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": [
            {"id": k, "image_id": image, "category_id": category, "bbox": [10, 10, 20, 20], "area": 400.0,
             "iscrowd": 0, "segmentation": copy.deepcopy(square)}
            for k, image, category in ((11, 1, 1), (12, 1, 2), (13, 2, 1))
        ],
    }  # fmt: skip


@pytest.fixture
def register_json(tmp_path, dataset_names):
    """`register_json(name, data)` writes `data` (a dict as json, or a str as the file's text) and 2
    images under tmp_path, registers them as detectron2 documents (`register_coco_instances(name,
    {}, ...)`) for the test, and returns (name, json file)."""
    return functools.partial(_register_json, tmp_path, dataset_names)


def _register_json(tmp_path, dataset_names: list, name: str, data) -> tuple[str, str]:
    root = tmp_path / name
    root.mkdir()
    json_file = str(root / "annotations.json")
    with open(json_file, "w") as f:
        f.write(data if isinstance(data, str) else json.dumps(data))
    for i in (1, 2):
        write_image(root / "images" / f"{i}.png")
    register_coco_instances(name, {}, json_file, str(root / "images"))
    dataset_names.append(name)
    return name, json_file


def edited(edit: Callable[[dict], None]) -> dict:
    data = coco_json()
    edit(data)
    return data


# ---- cases: tools/train_net.py on a COCO json registered as detectron2 documents


def _set(path: list, value):
    def edit(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _append(key: str, item: dict):
    return lambda data: data[key].append(item)


# (case id, the json or an edit of the valid one, the model opts, culprits named in the error)
TRAIN_JSON_CASES = [
    ("not_json", '{"images": [', TWO_CLASSES, ["annotations.json", "cannot be read as JSON"]),
    ("json_list", "[]", TWO_CLASSES, ["annotations.json", "no images / categories list"]),
    ("no_categories", edited(lambda d: d.pop("categories")), TWO_CLASSES, ["annotations.json", "no categories list"]),
    ("no_annotations", edited(lambda d: d.pop("annotations")), TWO_CLASSES, ["No valid data found in"]),
    ("repeated_image_id", edited(_set(["images", 1, "id"], 1)), TWO_CLASSES, ["1 image ids repeat", "[1]"]),
    ("repeated_annotation_id", edited(_set(["annotations", 1, "id"], 11)), TWO_CLASSES,
     ["annotation ids repeat", "[11]"]),
    ("repeated_category_id", edited(_set(["categories", 1, "id"], 1)), TWO_CLASSES, ["category ids repeat"]),
    ("annotation_of_unknown_image", edited(_set(["annotations", 2, "image_id"], 7)), TWO_CLASSES,
     ["of an image id the file does not list", "annotation id 13", "image id 7"]),
    ("unknown_category_id", edited(_set(["annotations", 0, "category_id"], 5)), TWO_CLASSES,
     ["category_id not in its categories [1, 2]", "annotation id 11", "'1.png'", "category_id 5"]),
    ("empty_bbox", edited(_set(["annotations", 1, "bbox"], [])), TWO_CLASSES, ["empty bbox", "annotation id 12"]),
    ("ignore_flag", edited(_set(["annotations", 1, "ignore"], 1)), TWO_CLASSES,
     ["marked 'ignore'", "annotation id 12"]),
    ("no_bbox", edited(lambda d: d["annotations"][2].pop("bbox")), TWO_CLASSES, ["2.png' annotation #0", "no bbox"]),
    ("rle_of_another_size", edited(_set(["annotations", 0, "segmentation"], {"size": [10, 10], "counts": [100]})),
     TWO_CLASSES + ["INPUT.MASK_FORMAT", "bitmask"], ["1.png' annotation #0", "RLE of size [10, 10]"]),
    ("more_categories_than_the_model", edited(_append("categories", {"id": 3, "name": "c"})), TWO_CLASSES,
     ["MODEL.ROI_HEADS.NUM_CLASSES=2", "has 3 thing_classes"]),
    ("fewer_categories_than_the_model", coco_json(), ["MODEL.KEYPOINT_ON", "False", "MODEL.ROI_HEADS.NUM_CLASSES", "5"],
     ["MODEL.ROI_HEADS.NUM_CLASSES=5", "has 2 thing_classes"]),
    ("image_missing", edited(_set(["images", 1, "file_name"], "gone.png")), TWO_CLASSES,
     ["gone.png", "image file missing"]),
    ("image_without_file_name", edited(lambda d: d["images"][0].pop("file_name")), TWO_CLASSES,
     ["annotations.json", "cannot be loaded", "file_name"]),
    ("keypoints_for_a_keypoint_model_without_names", coco_json(), ["MODEL.ROI_HEADS.NUM_CLASSES", "2"],
     ["MODEL.KEYPOINT_ON=True", "has no keypoint_names"]),
]  # fmt: skip


@pytest.mark.parametrize("case, data, opts, culprits", TRAIN_JSON_CASES, ids=[c[0] for c in TRAIN_JSON_CASES])
def test_train_net_refuses_a_bad_coco_json(register_json, case, data, opts, culprits, earlier_run, capfd):
    name, json_file = register_json(f"bad_inputs_{case}", data)
    before = file_hashes(earlier_run)
    outcome = run_tool_in_process(
        "train_net",
        [
            "--config-file",
            SYNTHETIC_CONFIG,
            *TINY_RUN,
            *opts,
            "DATASETS.TRAIN",
            f"('{name}',)",
            "OUTPUT_DIR",
            earlier_run,
        ],
        capfd,
    )
    assert outcome.code == 1, outcome.text
    assert name in outcome.text or json_file in outcome.text, outcome.text
    for culprit in culprits:
        assert culprit in outcome.text, outcome.text
    assert_unchanged(earlier_run, before)


def assert_unchanged(folder, before: dict) -> None:
    after = file_hashes(folder)
    changed = [path for path, digest in before.items() if after.get(path) != digest]
    assert not changed, f"changed or removed: {changed}"


# ---- cases: weights, checkpoints, configs and command lines through tools/train_net.py


def _checkpoint_edited(earlier_run, edit) -> dict:
    checkpoint = torch.load(os.path.join(earlier_run, "model_final.pth"))
    edit(checkpoint["model"])
    return checkpoint


def _truncated(earlier_run, path) -> None:
    with open(os.path.join(earlier_run, "model_final.pth"), "rb") as f:
        head = f.read(4096)
    with open(path, "wb") as f:
        f.write(head)


def _reshaped(model):
    model["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(3, 256)


def _without_mask_head(model):
    for key in [k for k in model if k.startswith("roi_heads.mask_head.")]:
        del model[key]


# (case id, write the bad file at `path` (or None), train_net arguments before the opts, opts, culprits)
WEIGHTS = "MODEL.WEIGHTS"
TRAIN_NET_CASES = [
    ("weights_missing", None, [], [WEIGHTS, "{tmp}/gone.pth"], ["'{tmp}/gone.pth' does not exist"]),
    ("weights_truncated", lambda run, p: _truncated(run, p), [], [WEIGHTS, "{path}"],
     ["'{path}' cannot be read as a checkpoint", "truncated"]),
    ("weights_text_file", lambda run, p: open(p, "w").write("not a checkpoint"), [], [WEIGHTS, "{path}"],
     ["'{path}' cannot be read as a checkpoint"]),
    ("weights_a_tensor", lambda run, p: torch.save(torch.zeros(3), p), [], [WEIGHTS, "{path}"], ["'{path}'"]),
    ("weights_pkl_not_a_pickle", lambda run, p: open(p, "w").write("text"), [], [WEIGHTS, "{tmp}/weights.pkl"],
     ["cannot be read as a checkpoint"]),
    ("weights_of_another_model", lambda run, p: torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, p), [],
     [WEIGHTS, "{path}"], ["'{path}' does not fit the model", "none of the model's"]),
    ("weights_of_another_class_count", lambda run, p: torch.save(_checkpoint_edited(run, _reshaped), p), [],
     [WEIGHTS, "{path}"], ["'{path}' does not fit", "1 of the model's",
                           "roi_heads.box_predictor.cls_score.weight (3, 256)", "MASK_RCNN_EXT.WEIGHTS.ALLOW_PARTIAL"]),
    ("evaluated_checkpoint_truncated", lambda run, p: _truncated(run, p), ["--eval-only"], [WEIGHTS, "{path}"],
     ["'{path}' cannot be read as a checkpoint"]),
    ("evaluated_checkpoint_of_another_class_count", lambda run, p: torch.save(_checkpoint_edited(run, _reshaped), p),
     ["--eval-only"], [WEIGHTS, "{path}"], ["'{path}' does not fit", "cls_score.weight"]),
    ("evaluated_checkpoint_without_mask_head",
     lambda run, p: torch.save(_checkpoint_edited(run, _without_mask_head), p),
     ["--eval-only"], [WEIGHTS, "{path}"], ["'{path}' does not fit", "tensors are not in it", "roi_heads.mask_head."]),
    ("evaluated_weights_missing", None, ["--eval-only"], [WEIGHTS, "{tmp}/gone.pth"],
     ["'{tmp}/gone.pth' does not exist"]),
    ("unknown_config_key", None, [], ["MODEL.NOPE", "1"], ["MODEL.NOPE"]),
    ("config_value_of_another_type", None, [], ["SOLVER.BASE_LR", "fast"], ["SOLVER.BASE_LR", "fast"]),
    ("odd_number_of_opts", None, [], ["SOLVER.BASE_LR"], ["odd length"]),
    ("unregistered_dataset", None, [], ["DATASETS.TRAIN", "('no_such_dataset',)"],
     ["'no_such_dataset' is not registered"]),
    ("keypoint_count_of_another_set", None, [], ["MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS", "4"],
     ["MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS=4"]),
    ("unknown_coco_backend", None, [], ["MASK_RCNN_EXT.EVAL.COCO_BACKEND", "fastest"], ["COCO_BACKEND='fastest'"]),
    ("output_dir_is_a_file", lambda run, p: open(p, "w").write("a file"), [], ["OUTPUT_DIR", "{path}"], ["{path}"]),
    ("mistyped_flag", None, ["--eval-onyl"], [], ["--eval-onyl"]),
    ("import_that_fails", None, ["--import", "no_such_module_of_yours"], [], ["no_such_module_of_yours"]),
]  # fmt: skip
EXIT_CODES = {"mistyped_flag": 2, "import_that_fails": 2}


@pytest.mark.parametrize("case, write, flags, opts, culprits", TRAIN_NET_CASES, ids=[c[0] for c in TRAIN_NET_CASES])
def test_train_net_refuses_bad_weights_configs_and_arguments(
    case, write, flags, opts, culprits, tmp_path, earlier_run, capfd
):
    suffix = ".pkl" if "pkl" in case else ".pth"
    path = str(tmp_path / f"weights{suffix}")
    if write is not None:
        write(earlier_run, path)
    fill = lambda text: text.format(tmp=tmp_path, path=path)  # noqa: E731
    before = file_hashes(earlier_run)
    outcome = run_tool_in_process(
        "train_net",
        ["--config-file", SYNTHETIC_CONFIG, *flags, *TINY_RUN, "OUTPUT_DIR", earlier_run, *map(fill, opts)],
        capfd,
    )
    assert outcome.code == EXIT_CODES.get(case, 1), outcome.text
    for culprit in map(fill, culprits):
        assert culprit in outcome.text, outcome.text
    assert_unchanged(earlier_run, before)


def test_eval_only_refuses_a_bad_test_json_before_writing(register_json, earlier_run, capfd):
    name, json_file = register_json("bad_inputs_test_json", edited(_set(["annotations", 0, "category_id"], 9)))
    before = file_hashes(earlier_run)
    outcome = run_tool_in_process(
        "train_net",
        ["--config-file", SYNTHETIC_CONFIG, "--eval-only", *TINY_RUN, *TWO_CLASSES, "DATASETS.TRAIN", "()",
         "DATASETS.TEST", f"('{name}',)", "OUTPUT_DIR", earlier_run, WEIGHTS, ""],
        capfd,
    )  # fmt: skip
    assert outcome.code == 1 and "DATASETS.TEST" in outcome.text and json_file in outcome.text, outcome.text
    assert "annotation id 11" in outcome.text and "category_id 9" in outcome.text, outcome.text
    assert_unchanged(earlier_run, before)


def test_resume_with_no_readable_checkpoint_names_them_all(tmp_path, earlier_run, capfd):
    run = tmp_path / "run"
    shutil.copytree(earlier_run, run)
    for checkpoint in run.glob("model_*.pth"):
        _truncated(earlier_run, checkpoint)
    before = file_hashes(run)
    outcome = run_tool_in_process(
        "train_net", ["--config-file", SYNTHETIC_CONFIG, "--resume", *TINY_RUN, "OUTPUT_DIR", str(run)], capfd
    )
    assert outcome.code == 1, outcome.text
    assert "none of the checkpoints" in outcome.text and "model_0000000.pth" in outcome.text, outcome.text
    assert_unchanged(run, before)


# ---- cases: tools/demo.py and tools/convert_coco_to_cityscapes.py


@pytest.fixture
def earlier_demo_output(tmp_path):
    """A folder holding an earlier demo's predictions.json."""
    output = tmp_path / "demo"
    output.mkdir()
    (output / "predictions.json").write_text("[]")
    return output


def test_demo_refuses_weights_it_cannot_load(tmp_path, earlier_run, earlier_demo_output, capfd):
    image = write_image(tmp_path / "a.png")
    weights = tmp_path / "weights.pth"
    _truncated(earlier_run, weights)
    before = file_hashes(earlier_demo_output)
    argv = ["--config-file", SYNTHETIC_CONFIG, "--input", image, "--output", str(earlier_demo_output)]
    outcome = run_tool_in_process("demo", [*argv, "--opts", WEIGHTS, str(weights)], capfd)
    assert outcome.code == 1 and f"'{weights}' cannot be read as a checkpoint" in outcome.text, outcome.text
    assert_unchanged(earlier_demo_output, before)


def test_demo_with_no_readable_input_writes_nothing(tmp_path, earlier_run, earlier_demo_output, capfd):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("text")
    before = file_hashes(earlier_demo_output)
    argv = ["--config-file", SYNTHETIC_CONFIG, "--output", str(earlier_demo_output)]
    weights = ["--opts", WEIGHTS, os.path.join(earlier_run, "model_final.pth")]
    outcome = run_tool_in_process(
        "demo", [*argv, "--input", str(not_an_image), str(tmp_path / "none_*.jpg"), *weights], capfd
    )
    assert outcome.code == 1, outcome.text
    assert f"{not_an_image}: cannot read image" in outcome.text and "none_*.jpg: matched no image" in outcome.text
    assert_unchanged(earlier_demo_output, before)


CONVERT_CASES = [
    ("not_a_checkpoint", lambda run, p: open(p, "w").write("text"), ".pth", ["cannot be read as a checkpoint"]),
    ("truncated", lambda run, p: _truncated(run, p), ".pth", ["cannot be read as a checkpoint"]),
    ("missing", None, ".pth", ["cannot be read as a checkpoint", "No such file"]),
    ("pkl_not_a_pickle", lambda run, p: open(p, "w").write("text"), ".pkl", ["cannot be read as a checkpoint"]),
    ("not_a_coco_model", lambda run, p: torch.save(_checkpoint_edited(run, lambda m: None), p), ".pth",
     ["roi_heads.box_predictor.cls_score.weight"]),
]  # fmt: skip


@pytest.mark.parametrize("case, write, suffix, culprits", CONVERT_CASES, ids=[c[0] for c in CONVERT_CASES])
def test_convert_coco_to_cityscapes_names_a_bad_input(case, write, suffix, culprits, tmp_path, earlier_run, capfd):
    source, output = tmp_path / f"coco{suffix}", tmp_path / "out" / "cityscapes.pth"
    output.parent.mkdir()
    output.write_bytes(b"an earlier conversion")
    if write is not None:
        write(earlier_run, source)
    outcome = run_tool_in_process("convert_coco_to_cityscapes", [str(source), str(output)], capfd)
    assert outcome.code == 1 and str(source) in outcome.text, outcome.text
    for culprit in culprits:
        assert culprit in outcome.text, outcome.text
    assert output.read_bytes() == b"an earlier conversion"


def test_convert_coco_to_cityscapes_refuses_a_pkl_output(tmp_path, capfd):
    outcome = run_tool_in_process(
        "convert_coco_to_cityscapes", [str(tmp_path / "in.pth"), str(tmp_path / "out.pkl")], capfd
    )
    assert outcome.code == 2 and "name it .pth" in outcome.text, outcome.text


# ---- what a run keeps


def test_a_failed_run_keeps_its_own_config_and_log_apart(tmp_path, earlier_run, capfd):
    invocations = os.path.join(earlier_run, "invocations")
    first = os.listdir(invocations)
    oldest = min(first)  # the earlier run's (folders are named by time): the config of its config.yaml
    with (
        open(os.path.join(invocations, oldest, "config.yaml")) as a,
        open(os.path.join(earlier_run, "config.yaml")) as b,
    ):
        assert a.read() == b.read()
    outcome = run_tool_in_process(
        "train_net",
        ["--config-file", SYNTHETIC_CONFIG, *TINY_RUN, "OUTPUT_DIR", earlier_run, WEIGHTS, str(tmp_path / "gone.pth")],
        capfd,
    )
    assert outcome.code == 1
    (failed,) = set(os.listdir(invocations)) - set(first)
    with open(os.path.join(invocations, failed, "log.txt")) as f:
        log = f.read()
    assert "The run failed" in log and "gone.pth' does not exist" in log
    with open(os.path.join(invocations, failed, "config.yaml")) as f:
        assert str(tmp_path / "gone.pth") in f.read()


def test_resume_passes_over_a_truncated_newest_checkpoint(tmp_path, earlier_run, capfd):
    run = tmp_path / "run"
    shutil.copytree(earlier_run, run)
    _truncated(earlier_run, run / "model_final.pth")  # last_checkpoint names it
    _truncated(earlier_run, run / "model_0000001.pth")
    outcome = run_tool_in_process(
        "train_net", ["--config-file", SYNTHETIC_CONFIG, "--resume", *TINY_RUN, "OUTPUT_DIR", str(run)], capfd
    )
    assert outcome.code == 0, outcome.text
    log = (run / "log.txt").read_text()
    assert f"'{run / 'model_final.pth'}' cannot be read as a checkpoint" in log
    assert "Starting training from iteration 1" in log
    assert torch.load(run / "model_final.pth")["iteration"] == 1
    assert f"OUTPUT_DIR: {run}" in (run / "config.yaml").read_text()  # the run that trained: its config


# ---- cases: tools/check_dataset.py (images decoded; skipped parts named, exit 0)


def _truncated_image(path):
    write_image(path)
    with open(path, "rb") as f:
        head = f.read(200)
    with open(path, "wb") as f:
        f.write(head)


IMAGE_CASES = [
    ("truncated_png", _truncated_image, ["1.png'", "unreadable image"]),
    ("text_as_png", lambda p: open(p, "w").write("not an image"), ["1.png'", "unreadable image"]),
    ("empty_file", lambda p: open(p, "wb").close(), ["1.png'", "unreadable image"]),
    ("size_of_another_image", lambda p: write_image(p, size=(40, 64)), ["image is 40x64 but the record says 48x64"]),
    ("float_tiff", lambda p: Image.fromarray(np.zeros((48, 64), np.float32)).save(p, format="TIFF"),
     ["1.png'", "PIL mode 'F'"]),
    ("int32_tiff", lambda p: Image.fromarray(np.zeros((48, 64), np.int32)).save(p, format="TIFF"), ["PIL mode 'I'"]),
]  # fmt: skip


@pytest.mark.parametrize("case, write, culprits", IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES])
def test_check_dataset_names_a_bad_image(register_json, case, write, culprits, tmp_path, capfd):
    name, _ = register_json(f"bad_inputs_image_{case}", coco_json())
    image = tmp_path / name / "images" / "1.png"
    image.unlink()
    write(str(image))
    outcome = run_tool_in_process("check_dataset", [name], capfd)
    assert outcome.code == 1, outcome.text
    for culprit in culprits:
        assert culprit in outcome.text, outcome.text


BAD_POLYGON = "polygon of an odd number of coordinates or fewer than 3 points"
SKIP_CASES = [
    ("odd_polygon", [[10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0]], [BAD_POLYGON, "object without a polygon"]),
    ("two_point_polygon", [[10.0, 10.0, 30.0, 30.0]], [BAD_POLYGON, "object without a polygon of 3 points"]),
    ("one_bad_of_two_polygons", [[10.0, 10.0, 30.0, 10.0, 30.0, 30.0], [1.0, 2.0]], [BAD_POLYGON]),
]  # fmt: skip


@pytest.mark.parametrize("case, segmentation, skipped", SKIP_CASES, ids=[c[0] for c in SKIP_CASES])
def test_check_dataset_names_polygons_detectron2_drops(register_json, case, segmentation, skipped, capfd):
    name, json_file = register_json(
        f"bad_inputs_{case}", edited(_set(["annotations", 1, "segmentation"], segmentation))
    )
    outcome = run_tool_in_process("check_dataset", [name], capfd)
    assert outcome.code == 0, outcome.text
    for kind in skipped:
        assert f"skipped 1 x {kind}" in outcome.text, outcome.text
    assert f"'{json_file}' annotation id 12 (image id 1, '1.png')" in outcome.text, outcome.text


def test_check_dataset_refuses_what_it_cannot_check(register_json, capfd):
    outcome = run_tool_in_process("check_dataset", ["no_such_dataset"], capfd)
    assert outcome.code == 2 and "'no_such_dataset' is not registered" in outcome.text, outcome.text
    name, json_file = register_json("bad_inputs_truncated_json", json.dumps(coco_json())[:100])
    outcome = run_tool_in_process("check_dataset", [name], capfd)
    assert outcome.code == 2 and f"'{json_file}' cannot be read as JSON" in outcome.text, outcome.text


def test_an_object_without_segmentation_is_skipped_by_name_for_a_mask_model(register_json, tmp_path, caplog):
    name, _ = register_json("bad_inputs_no_segmentation", edited(_set(["annotations", 1, "segmentation"], [])))
    cfg = build_config(SYNTHETIC_CONFIG, [*TWO_CLASSES, "DATASETS.TRAIN", f"('{name}',)", "DATASETS.TEST", "()"])
    records = checked_training_records(cfg)
    assert [len(r["annotations"]) for r in records] == [1, 1]
    assert "skipped 1 x object without a segmentation (the model predicts masks), e.g. '" in caplog.text
    assert "1.png' annotation #1" in caplog.text


# ---- cases: Cityscapes trees


@pytest.fixture(scope="module")
def cityscapes_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    write_split(SyntheticCityscapesSpec("train", 2, seed=5, cities=("aachen",)), str(root), num_workers=1)
    return root


def _eight_bit(path):
    Image.fromarray((np.asarray(Image.open(path)) % 256).astype(np.uint8)).save(path)


def _rgb(path):
    Image.fromarray((np.asarray(Image.open(path)) % 256).astype(np.uint8)).convert("RGB").save(path)


def _with_an_unknown_label(path):
    with open(path) as f:
        polygons = json.load(f)
    polygons["objects"].append({"label": "ufo", "polygon": [[0, 0], [5, 0], [5, 5]]})
    with open(path, "w") as f:
        json.dump(polygons, f)


CITYSCAPES_CASES = [
    ("instance_ids_8_bit", "png", "*_gtFine_instanceIds.png", _eight_bit, ["PIL mode 'L'"]),
    ("instance_ids_rgb", "png", "*_gtFine_instanceIds.png", _rgb, ["PIL mode 'RGB'"]),
    ("instance_ids_missing", "png", "*_gtFine_instanceIds.png", os.remove, ["_gtFine_instanceIds.png"]),
    ("polygons_not_json", "json", "*_gtFine_polygons.json", lambda p: open(p, "w").write("{"), ["polygons json"]),
    ("polygons_unknown_label", "json", "*_gtFine_polygons.json", _with_an_unknown_label,
     ["unknown Cityscapes label 'ufo'"]),
]  # fmt: skip


@pytest.mark.parametrize(
    "case, source, pattern, damage, culprits", CITYSCAPES_CASES, ids=[c[0] for c in CITYSCAPES_CASES]
)
def test_check_dataset_and_train_net_name_bad_cityscapes_ground_truth(
    dataset_names, case, source, pattern, damage, culprits, cityscapes_tree, tmp_path, earlier_run, capfd
):
    tree = tmp_path / "tree"
    shutil.copytree(cityscapes_tree, tree)
    damaged = sorted((tree / "gtFine" / "train" / "aachen").glob(pattern))[0]
    damage(str(damaged))
    name = f"bad_inputs_cityscapes_{case}"
    register_cityscapes_instances(
        name, str(tree / "leftImg8bit" / "train"), str(tree / "gtFine" / "train"), source=source
    )
    dataset_names.append(name)
    outcome = run_tool_in_process("check_dataset", [name], capfd)
    assert outcome.code == 2 and str(damaged) in outcome.text, outcome.text
    for culprit in culprits:
        assert culprit in outcome.text, outcome.text
    before = file_hashes(earlier_run)
    outcome = run_tool_in_process(
        "train_net",
        ["--config-file", SYNTHETIC_CONFIG, *TINY_RUN, "MODEL.KEYPOINT_ON", "False", "MODEL.ROI_HEADS.NUM_CLASSES", "8",
         "DATASETS.TRAIN", f"('{name}',)", "OUTPUT_DIR", earlier_run],
        capfd,
    )  # fmt: skip
    assert outcome.code == 1 and str(damaged) in outcome.text, outcome.text
    assert_unchanged(earlier_run, before)
