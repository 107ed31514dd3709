"""Registers the built-in synthetic datasets with detectron2's DatasetCatalog/MetadataCatalog.

The images are generated on first use (see `synthetic.py`) under
`$DETECTRON2_DATASETS/synthetic/` (default `./datasets/synthetic/`) and then reused.
"""
import os
from typing import Dict

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from detectron2.data.datasets.builtin_meta import KEYPOINT_CONNECTION_RULES

from .coco_keypoints import COCO_PERSON_OKS_SIGMAS
from .synthetic import (
    COCO_KEYPOINT_FLIP_MAP,
    COCO_KEYPOINT_NAMES,
    THING_CLASSES,
    SyntheticSpec,
    ensure_coco_split,
)

# name -> what to generate. Train and val of a kind differ only in seed and size.
# synthetic_*: 2-3 people among 1-5 shapes in every image (the demo's masks + keypoints: a
# person seen often enough to learn pose in the demo's schedule); synthetic_people_*: 2-3 people
# among up to 3 shapes (the keypoint-focused config).
_MIXED = dict(person_probability=1.0, min_people=2, max_people=3, min_objects=1, max_objects=5)
_PEOPLE = dict(person_probability=1.0, min_people=2, max_people=3, min_objects=0, max_objects=3)
SYNTHETIC_SPLITS: Dict[str, SyntheticSpec] = {
    "synthetic_train": SyntheticSpec(num_images=1000, seed=1, **_MIXED),
    "synthetic_val": SyntheticSpec(num_images=100, seed=2, **_MIXED),
    "synthetic_people_train": SyntheticSpec(num_images=1000, seed=3, **_PEOPLE),
    "synthetic_people_val": SyntheticSpec(num_images=100, seed=4, **_PEOPLE),
}


def synthetic_metadata() -> dict:
    """Metadata of every synthetic split: COCO-style classes and the 17 COCO person keypoints."""
    return dict(
        thing_classes=list(THING_CLASSES),
        thing_dataset_id_to_contiguous_id={i + 1: i for i in range(len(THING_CLASSES))},
        keypoint_names=list(COCO_KEYPOINT_NAMES),
        keypoint_flip_map=list(COCO_KEYPOINT_FLIP_MAP),
        keypoint_connection_rules=KEYPOINT_CONNECTION_RULES,
        # COCO's per-keypoint OKS sigmas, as pycocotools defines them; read by our evaluator.
        keypoint_oks_sigmas=list(COCO_PERSON_OKS_SIGMAS),
        evaluator_type="coco",
    )


def register_synthetic_split(name: str, spec: SyntheticSpec, root: str) -> None:
    """Register `name` as the synthetic split `spec`, stored (once generated) under `root`."""
    json_file = os.path.join(root, f"{name}.json")
    image_root = os.path.join(root, name)

    def load():
        ensure_coco_split(spec, root, name)
        return load_coco_json(json_file, image_root, name)

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(json_file=json_file, image_root=image_root, **synthetic_metadata())


def register_all_synthetic(root: str) -> None:
    for name, spec in SYNTHETIC_SPLITS.items():
        register_synthetic_split(name, spec, os.path.join(root, "synthetic"))


register_all_synthetic(os.getenv("DETECTRON2_DATASETS", "datasets"))
