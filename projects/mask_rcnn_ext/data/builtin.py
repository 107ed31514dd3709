"""Registers the built-in datasets with detectron2's DatasetCatalog/MetadataCatalog, under
`$DETECTRON2_DATASETS` (default `./datasets/`):

* the synthetic COCO-format splits, generated on first use (the `synthetic` subpackage) under
  `synthetic/`;
* Cityscapes fine instances, `cityscapes/{leftImg8bit,gtFine}/<split>/` (datasets/README.md), parsed
  once and cached under `cityscapes/cache/`;
* a synthetic Cityscapes tree, generated on first use under `synthetic_cityscapes/`.
"""

import os
from typing import Optional

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from detectron2.data.datasets.builtin_meta import (
    COCO_PERSON_KEYPOINT_FLIP_MAP,
    COCO_PERSON_KEYPOINT_NAMES,
    KEYPOINT_CONNECTION_RULES,
)

from .cityscapes import CityscapesTree, cityscapes_metadata, load_cityscapes_instances, register_cityscapes_instances
from .coco_keypoints import COCO_PERSON_OKS_SIGMAS
from .synthetic import THING_CLASSES, SyntheticSpec, ensure_coco_split
from .synthetic_cityscapes import SyntheticCityscapesSpec, ensure_split

# name -> what to generate. Train and val of a kind differ only in seed and size.
# synthetic_*: 2-3 people among 1-5 shapes in every image (the demo's masks + keypoints: a
# person seen often enough to learn pose in the demo's schedule); synthetic_people_*: 2-3 people
# among up to 3 shapes (the keypoint-focused config).
_MIXED = dict(person_probability=1.0, min_people=2, max_people=3, min_objects=1, max_objects=5)
_PEOPLE = dict(person_probability=1.0, min_people=2, max_people=3, min_objects=0, max_objects=3)
SYNTHETIC_SPLITS: dict[str, SyntheticSpec] = {
    "synthetic_train": SyntheticSpec(num_images=1000, seed=1, **_MIXED),
    "synthetic_val": SyntheticSpec(num_images=100, seed=2, **_MIXED),
    # synthetic_val's first 10 images (the same seed): an evaluation in seconds, for checks of a
    # pipeline rather than of a model (`python -m experiments.table2_cpu.ablate --quick`, the tests)
    "synthetic_val_mini": SyntheticSpec(num_images=10, seed=2, **_MIXED),
    "synthetic_people_train": SyntheticSpec(num_images=1000, seed=3, **_PEOPLE),
    "synthetic_people_val": SyntheticSpec(num_images=100, seed=4, **_PEOPLE),
}


def synthetic_metadata() -> dict:
    """Metadata of every synthetic split: COCO-style classes and the 17 COCO person keypoints."""
    return dict(
        thing_classes=list(THING_CLASSES),
        thing_dataset_id_to_contiguous_id={i + 1: i for i in range(len(THING_CLASSES))},
        keypoint_names=list(COCO_PERSON_KEYPOINT_NAMES),
        keypoint_flip_map=list(COCO_PERSON_KEYPOINT_FLIP_MAP),
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


# Names differ from detectron2's `cityscapes_fine_instance_seg_*`, which its own catalog holds.
CITYSCAPES_SPLITS = {
    "cityscapes_instances_fine_train": "train",
    "cityscapes_instances_fine_val": "val",
    "cityscapes_instances_fine_test": "test",
}


def cityscapes_root(datasets_root: Optional[str] = None) -> str:
    """`$DETECTRON2_DATASETS/cityscapes` (datasets/README.md gives its layout)."""
    return os.path.join(datasets_root or os.getenv("DETECTRON2_DATASETS", "datasets"), "cityscapes")


def cityscapes_cache_dir(datasets_root: Optional[str] = None) -> str:
    """Where the parsed Cityscapes records are cached (datasets/prepare_cityscapes.py fills it)."""
    return os.path.join(cityscapes_root(datasets_root), "cache")


def register_all_cityscapes(datasets_root: str) -> None:
    """The official splits; test has no public ground truth, so its records have no annotations."""
    root = cityscapes_root(datasets_root)
    for name, split in CITYSCAPES_SPLITS.items():
        gt_dir = None if split == "test" else os.path.join(root, "gtFine", split)
        register_cityscapes_instances(
            name, os.path.join(root, "leftImg8bit", split), gt_dir, cache_dir=cityscapes_cache_dir(datasets_root)
        )


# A street-scene tree small enough to train on 2 cores (images 512 x 256).
SYNTHETIC_CITYSCAPES_SPLITS: dict[str, SyntheticCityscapesSpec] = {
    "synthetic_cityscapes_train": SyntheticCityscapesSpec("train", 300, seed=11, cities=("aachen", "bochum", "bremen")),
    "synthetic_cityscapes_val": SyntheticCityscapesSpec("val", 40, seed=12, cities=("frankfurt", "lindau", "munster")),
    "synthetic_cityscapes_test": SyntheticCityscapesSpec(
        "test", 8, seed=13, cities=("berlin", "bielefeld"), with_ground_truth=False
    ),
}


def register_synthetic_cityscapes_split(name: str, spec: SyntheticCityscapesSpec, root: str) -> None:
    """Register `name` as the synthetic Cityscapes split `spec`, generated under `root` on first load."""
    gt_dir = os.path.join(root, "gtFine", spec.split) if spec.with_ground_truth else None
    tree = CityscapesTree(os.path.join(root, "leftImg8bit", spec.split), gt_dir)

    def load():
        ensure_split(spec, root)
        return load_cityscapes_instances(tree, cache_dir=os.path.join(root, "cache"))

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(**cityscapes_metadata(tree))


def register_all(root: str) -> None:
    register_all_synthetic(root)
    register_all_cityscapes(root)
    for name, spec in SYNTHETIC_CITYSCAPES_SPLITS.items():
        register_synthetic_cityscapes_split(name, spec, os.path.join(root, "synthetic_cityscapes"))


register_all(os.getenv("DETECTRON2_DATASETS", "datasets"))
