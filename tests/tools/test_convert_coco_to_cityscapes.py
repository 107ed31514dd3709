"""tools/convert_coco_to_cityscapes.py: the COCO -> Cityscapes weight surgery on R-50-FPN Mask R-CNNs."""

import os
import pickle
import re
from typing import NamedTuple

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model

from mask_rcnn_ext import build_config

from conftest import CONFIGS_DIR, import_tool

CITYSCAPES_FROM_COCO, convert_state_dict, main = (
    getattr(import_tool("convert_coco_to_cityscapes"), name)
    for name in ("CITYSCAPES_FROM_COCO", "convert_state_dict", "main")
)

CONFIG = os.path.join(CONFIGS_DIR, "COCO-InstanceSegmentation", "mask_rcnn_R_50_FPN.yaml")
CLASS_AGNOSTIC = ("MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG", "True", "MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK", "True")
CLS, BBOX = "roi_heads.box_predictor.cls_score", "roi_heads.box_predictor.bbox_pred"
MASK = "roi_heads.mask_head.predictor"
HEAD_KEYS = {f"{prefix}.{suffix}" for prefix in (CLS, BBOX, MASK) for suffix in ("weight", "bias")}
RIDER = 1
COPIED = [(city_id, coco_id) for city_id, (_, coco_id) in enumerate(CITYSCAPES_FROM_COCO) if coco_id is not None]
# the recipe that starts from the converted weights
CITYSCAPES_CONFIG = os.path.join(CONFIGS_DIR, "Cityscapes", "mask_rcnn_R_50_FPN_coco_init.yaml")


class Checkpoint(NamedTuple):
    path: str
    state_dict: dict


def build(overrides=(), config=CONFIG):
    """A randomly initialised R-50-FPN Mask R-CNN (seeded): `config` (the COCO one) with `overrides`."""
    torch.manual_seed(0)
    return build_model(build_config(config, ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", *overrides]))


def save_coco_model(directory, overrides=()) -> Checkpoint:
    """A random COCO Mask R-CNN saved as training saves it (with an iteration).

    Its class-specific weights and biases are redrawn with std 1: detectron2 sets those biases to 0,
    and distinct rows are what shows which row went where.
    """
    model = build(overrides)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if key in HEAD_KEYS:
                tensor.normal_(generator=generator)
    DetectionCheckpointer(model, save_dir=str(directory)).save("coco", iteration=1234)
    return Checkpoint(os.path.join(directory, "coco.pth"), {k: v.clone() for k, v in model.state_dict().items()})


def convert_with_main(coco_path, output_path, *args):
    main([coco_path, str(output_path), *args])
    checkpoint = torch.load(output_path)
    assert set(checkpoint) == {"model"}  # no optimizer, scheduler or iteration: training starts at 0
    return checkpoint["model"]


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return save_coco_model(tmp_path_factory.mktemp("coco"))


@pytest.fixture(scope="module")
def converted(coco, tmp_path_factory):
    """The tool's output for `coco`, with its default seed."""
    path = str(tmp_path_factory.mktemp("cityscapes") / "cityscapes.pth")
    return Checkpoint(path, convert_with_main(coco.path, path))


def assert_loads_without_missing_or_unexpected_keys(path, state_dict, overrides=()):
    model = build(overrides, CITYSCAPES_CONFIG)
    assert DetectionCheckpointer(model).load(str(path)) == {}
    assert set(model.state_dict()) == set(state_dict)
    for key, tensor in model.state_dict().items():  # fvcore skips (with a warning) tensors of another shape
        assert torch.equal(tensor, state_dict[key]), key
    incompatible = model.load_state_dict(state_dict, strict=True)
    assert incompatible.missing_keys == [] and incompatible.unexpected_keys == []


def test_class_table_follows_our_cityscapes_and_detectron2s_coco_class_orders():
    assert [name for name, _ in CITYSCAPES_FROM_COCO] == MetadataCatalog.get(
        "cityscapes_instances_fine_train"
    ).thing_classes
    coco_classes = MetadataCatalog.get("coco_2017_train").thing_classes
    assert [(name, coco_classes[coco_id]) for name, coco_id in CITYSCAPES_FROM_COCO if coco_id is not None] == [
        ("person", "person"),
        ("car", "car"),
        ("truck", "truck"),
        ("bus", "bus"),
        ("train", "train"),
        ("motorcycle", "motorcycle"),
        ("bicycle", "bicycle"),
    ]


def test_output_loads_into_a_cityscapes_model(converted):
    assert_loads_without_missing_or_unexpected_keys(*converted)


def test_class_rows_are_the_coco_rows_in_cityscapes_order(coco, converted):
    coco_sd, city = coco.state_dict, converted.state_dict
    assert city[f"{CLS}.weight"].shape == (9, 1024) and city[f"{CLS}.bias"].shape == (9,)
    assert city[f"{BBOX}.weight"].shape == (32, 1024) and city[f"{BBOX}.bias"].shape == (32,)
    assert city[f"{MASK}.weight"].shape == (8, 256, 1, 1) and city[f"{MASK}.bias"].shape == (8,)
    for city_id, coco_id in COPIED:
        for suffix in ("weight", "bias"):
            assert torch.equal(city[f"{CLS}.{suffix}"][city_id], coco_sd[f"{CLS}.{suffix}"][coco_id])
            assert torch.equal(city[f"{MASK}.{suffix}"][city_id], coco_sd[f"{MASK}.{suffix}"][coco_id])
            assert torch.equal(
                city[f"{BBOX}.{suffix}"][4 * city_id : 4 * city_id + 4],
                coco_sd[f"{BBOX}.{suffix}"][4 * coco_id : 4 * coco_id + 4],
            )
    for suffix in ("weight", "bias"):  # background: last, index K, in both
        assert torch.equal(city[f"{CLS}.{suffix}"][8], coco_sd[f"{CLS}.{suffix}"][80])


def test_every_other_tensor_is_copied_unchanged(coco, converted):
    coco_sd, city = coco.state_dict, converted.state_dict
    assert set(city) == set(coco_sd)
    for key in set(coco_sd) - HEAD_KEYS:
        assert torch.equal(city[key], coco_sd[key]), key


def test_rider_is_initialised_as_detectron2_initialises_the_layers(coco, converted):
    coco_sd, city = coco.state_dict, converted.state_dict
    rider_rows = {CLS: slice(RIDER, RIDER + 1), BBOX: slice(4 * RIDER, 4 * RIDER + 4), MASK: slice(RIDER, RIDER + 1)}
    for prefix, std in ((CLS, 0.01), (BBOX, 0.001), (MASK, 0.001)):
        weight = city[f"{prefix}.weight"][rider_rows[prefix]]
        assert std / 2 < weight.std().item() < std * 2, prefix  # over 1024, 4 x 1024 and 256 weights
        assert abs(weight.mean().item()) < std / 4, prefix
        assert torch.equal(city[f"{prefix}.bias"][rider_rows[prefix]], torch.zeros(weight.shape[0]))
        coco_rows = coco_sd[f"{prefix}.weight"].unflatten(0, (-1, weight.shape[0]))
        assert not any(torch.equal(weight, row) for row in coco_rows), prefix


def test_the_seed_decides_rider_alone(coco, converted):
    again = convert_state_dict(coco.state_dict)  # the default seed, main's default
    assert set(again) == set(converted.state_dict) and all(
        torch.equal(again[key], converted.state_dict[key]) for key in again
    )
    other = convert_state_dict(coco.state_dict, seed=1)
    for prefix, rows in ((CLS, 1), (BBOX, 4), (MASK, 1)):
        rider = slice(rows * RIDER, rows * RIDER + rows)
        assert not torch.equal(other[f"{prefix}.weight"][rider], again[f"{prefix}.weight"][rider]), prefix
        others = torch.ones(len(again[f"{prefix}.weight"]), dtype=torch.bool)
        others[rider] = False
        assert torch.equal(other[f"{prefix}.weight"][others], again[f"{prefix}.weight"][others]), prefix


def test_a_model_zoo_pkl_converts_as_its_pth(coco, converted, tmp_path):
    pkl = tmp_path / "coco.pkl"
    with open(pkl, "wb") as f:
        pickle.dump(
            {"model": {k: v.numpy() for k, v in coco.state_dict.items()}, "__author__": "Detectron2 Model Zoo"}, f
        )
    city = convert_with_main(str(pkl), tmp_path / "cityscapes.pth")
    assert set(city) == set(converted.state_dict) and all(
        torch.equal(city[key], converted.state_dict[key]) for key in city
    )


def test_class_agnostic_box_and_mask_outputs_are_copied(tmp_path, capsys):
    coco_path, coco_sd = save_coco_model(tmp_path, CLASS_AGNOSTIC)
    assert coco_sd[f"{BBOX}.weight"].shape == (4, 1024) and coco_sd[f"{MASK}.weight"].shape == (1, 256, 1, 1)
    output = tmp_path / "cityscapes.pth"
    city = convert_with_main(coco_path, output, "--seed", "3")
    for key in HEAD_KEYS - {f"{CLS}.weight", f"{CLS}.bias"}:
        assert torch.equal(city[key], coco_sd[key]), key
    assert city[f"{CLS}.weight"].shape == (9, 1024)
    assert torch.equal(city[f"{CLS}.weight"], convert_state_dict(coco_sd, seed=3)[f"{CLS}.weight"])
    assert_loads_without_missing_or_unexpected_keys(output, city, CLASS_AGNOSTIC)
    summary = capsys.readouterr().out
    assert f"{CLS}.weight: (81, 1024) -> (9, 1024)" in summary
    assert f"{BBOX}.weight: (4, 1024), class-agnostic: copied" in summary
    assert "rider <- random (seed 3)" in summary and "truck <- COCO 7" in summary


def test_a_non_coco_model_is_refused_with_the_key_and_its_shape(tmp_path):
    cityscapes_model = build(config=CITYSCAPES_CONFIG)
    path = tmp_path / "cityscapes.pth"
    torch.save({"model": cityscapes_model.state_dict()}, path)
    with pytest.raises(SystemExit) as exit_info:
        main([str(path), str(tmp_path / "out.pth")])
    assert f"{CLS}.weight has shape (9, 1024)" in str(exit_info.value.code)
    assert not (tmp_path / "out.pth").exists()
    state_dict = dict(cityscapes_model.state_dict())
    state_dict[f"{CLS}.weight"], state_dict[f"{CLS}.bias"] = torch.zeros(81, 1024), torch.zeros(81)
    state_dict[f"{BBOX}.weight"] = torch.zeros(324, 1024)  # 81 classes' deltas: a softmax-style regressor
    with pytest.raises(ValueError, match=re.escape(f"{BBOX}.weight has shape (324, 1024)")):
        convert_state_dict(state_dict)


@pytest.mark.parametrize("key", sorted(HEAD_KEYS))
def test_a_missing_class_specific_tensor_is_refused_by_name(coco, key):
    state_dict = {k: v for k, v in coco.state_dict.items() if k != key}
    with pytest.raises(ValueError, match="^" + re.escape(f"{key} is missing")):
        convert_state_dict(state_dict)


def test_a_pkl_output_and_a_file_without_model_are_refused(coco, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([coco.path, str(tmp_path / "out.pkl")])
    assert exit_info.value.code == 2 and "name it .pth" in capsys.readouterr().err
    torch.save({"state_dict": {}}, tmp_path / "other.pth")
    with pytest.raises(SystemExit, match="has no 'model' state dict"):
        main([str(tmp_path / "other.pth"), str(tmp_path / "out.pth")])
