"""K != 17 end to end: a keypoint set of 4 midline body points with no flip pairs, registered by a
user module with `register_coco_keypoints`, trained and evaluated by tools/train_net.py."""

import json
import os

import numpy as np
import pytest
import torch
from detectron2.data.datasets.builtin_meta import COCO_PERSON_KEYPOINT_NAMES

from mask_rcnn_ext.data.builtin import SYNTHETIC_SPLITS
from mask_rcnn_ext.data.synthetic import ensure_coco_split

from conftest import SYNTHETIC_CONFIG, run_tool

pytestmark = pytest.mark.slow  # trains models in subprocesses

# Each midline point is the middle of two COCO keypoints (a point with itself is that point), so
# a horizontal flip maps every one to itself: the set needs no flip map.
MIDLINE = {
    "head": ("left_ear", "right_ear"),
    "neck": ("left_shoulder", "right_shoulder"),
    "pelvis": ("left_hip", "right_hip"),
    "nose": ("nose", "nose"),
}
MIDLINE_SKELETON = [[4, 1], [1, 2], [2, 3]]

REGISTRATION_MODULE = """
from mask_rcnn_ext.data import register_coco_keypoints

for split in ("train", "val"):
    register_coco_keypoints(f"midline_{{split}}", {jsons}[split], {image_roots}[split])
"""


def midline_coco(coco: dict) -> dict:
    """`coco` (the synthetic split's json) with the person's 17 keypoints replaced by MIDLINE's."""
    index = {name: i for i, name in enumerate(COCO_PERSON_KEYPOINT_NAMES)}
    annotations = []
    for ann in coco["annotations"]:
        k17 = np.array(ann["keypoints"], dtype=float).reshape(-1, 3)
        k4 = np.zeros((len(MIDLINE), 3))
        for i, (a, b) in enumerate(MIDLINE.values()):
            if k17[index[a], 2] > 0 and k17[index[b], 2] > 0:
                k4[i] = (
                    (k17[index[a], 0] + k17[index[b], 0]) / 2,
                    (k17[index[a], 1] + k17[index[b], 1]) / 2,
                    min(k17[index[a], 2], k17[index[b], 2]),
                )
        annotations.append(dict(ann, keypoints=k4.flatten().tolist(), num_keypoints=int((k4[:, 2] > 0).sum())))
    categories = [dict(c) for c in coco["categories"]]
    categories[0].update(keypoints=list(MIDLINE), skeleton=MIDLINE_SKELETON)
    return dict(coco, annotations=annotations, categories=categories)


def test_a_four_keypoint_set_trains_and_evaluates_through_train_net(datasets_env, tmp_path):
    jsons, image_roots = {}, {}
    for split in ("train", "val"):
        name = f"synthetic_{split}"
        json_file, image_roots[split] = ensure_coco_split(
            SYNTHETIC_SPLITS[name], os.path.join(datasets_env["DETECTRON2_DATASETS"], "synthetic"), name
        )
        with open(json_file) as f:
            midline = midline_coco(json.load(f))
        # 20 training and 10 val images: what is tested is the keypoint set's way through, not what is learnt
        images = midline["images"][: 20 if split == "train" else 10]
        ids = {image["id"] for image in images}
        midline.update(images=images, annotations=[a for a in midline["annotations"] if a["image_id"] in ids])
        jsons[split] = str(tmp_path / f"midline_{split}.json")
        with open(jsons[split], "w") as f:
            json.dump(midline, f)
    (tmp_path / "midline_datasets.py").write_text(REGISTRATION_MODULE.format(jsons=jsons, image_roots=image_roots))

    output_dir = tmp_path / "out"
    env = dict(datasets_env, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    run_tool(
        "train_net.py",
        [
            "--import",
            "midline_datasets",
            "--config-file",
            SYNTHETIC_CONFIG,
            "DATASETS.TRAIN",
            "('midline_train',)",
            "DATASETS.TEST",
            "('midline_val',)",
            "MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS",
            4,
            "SOLVER.MAX_ITER",
            20,
            "SOLVER.WARMUP_ITERS",
            5,
            "SOLVER.STEPS",
            "()",
            "TEST.DETECTIONS_PER_IMAGE",
            20,
            "INPUT.MIN_SIZE_TRAIN",
            "(128,)",
            "INPUT.MAX_SIZE_TRAIN",
            200,
            "OUTPUT_DIR",
            output_dir,
        ],
        env,
        str(tmp_path / "train_net.log"),
    )

    with open(tmp_path / "train_net.log") as f:
        log = f.read()
    assert "midline_train" in log and "no keypoint_oks_sigmas" in log  # the default sigmas, warned
    model = torch.load(output_dir / "model_final.pth", weights_only=True)["model"]
    assert model["roi_heads.keypoint_head.score_lowres.weight"].shape[1] == len(MIDLINE)
    with open(output_dir / "eval_results.json") as f:
        results = json.load(f)
    assert np.isfinite(results["keypoints"]["AP"])  # COCOeval ran with 4 OKS sigmas
    with open(output_dir / "inference" / "keypoint_diagnostics.json") as f:
        diagnostics = json.load(f)
    assert [k["name"] for k in diagnostics["per_keypoint"]] == list(MIDLINE)
    assert diagnostics["num_gt_people"] > 0
