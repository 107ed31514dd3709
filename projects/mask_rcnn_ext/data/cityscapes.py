"""Cityscapes instance segmentation as detectron2 dataset dicts, with the official tools' semantics.

A tree in the standard layout holds, per split, `leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`
and, where the split has ground truth, `gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_{instanceIds.png,
labelIds.png,polygons.json}`. The instances come from the instance image (`source="png"`, the default:
what the official evaluation reads) or from the polygons, drawn as the official `json2instanceImg`
draws them (`source="json"`): in file order, each object over the earlier ones, deleted objects and
license plates skipped. Either way one record holds, per region of the 8 evaluated classes:

  * `category_id`: the class's index in `THING_CLASSES` (person, rider, car, truck, bus, train,
    motorcycle, bicycle); caravan, trailer and every other label are left out, as in evaluation;
  * `iscrowd`: True for a group region ("cargroup": the bare label id in the instance image);
  * `segmentation`: the region's visible pixels as compressed RLE (cut wherever a later-drawn object
    covers it), so configs use `INPUT.MASK_FORMAT: bitmask`;
  * `bbox`: XYXY_ABS around those pixels, the last row/column included (x1 = last column + 1).

The ground truth is checked before it is parsed, in the calling process (`check_ground_truth`),
every offender listed by file: an instance image must be 16-bit single-channel as published (PIL
mode "I;16", "I" in older Pillow; an 8-bit one cannot hold ids such as 26001 and would load without
a single instance), a polygons json must parse and hold drawable objects. `*_gtFine_labelIds.png`
is not read.

Records equal those of detectron2 v0.6's `load_cityscapes_instances(..., from_json=False,
to_polygons=False)` except that its boxes end one pixel early (x1 = last column) and it drops regions
one pixel wide or tall (tests/data/test_cityscapes.py shows both). detectron2's own Cityscapes modules
are not imported: on detectron2 main they import a path that does not exist outside Meta.
"""

import functools
import glob
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pycocotools.mask as mask_util
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image, ImageDraw

from .cityscapes_labels import THING_CLASSES, THING_LABEL_IDS, label_id_of, name2label
from .record_cache import load_cached

IMAGE_SUFFIX = "_leftImg8bit.png"
GT_SUFFIXES = {"png": "_gtFine_instanceIds.png", "json": "_gtFine_polygons.json"}
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
# 16-bit single channel, as Pillow opens the published instance images: "I;16" (recent), "I" (older)
INSTANCE_IMAGE_MODES = ("I;16", "I")
EVALUATOR_TYPE = "cityscapes_instance"
# Bump when records change for the same files, or files once loaded are refused: caches are then rebuilt.
# 2: ground truth checked (`check_ground_truth`); a cache of version 1 may hold records of 8-bit instance images.
RECORDS_VERSION = "2"
MAX_LISTED = 10  # ground-truth files named in an error; the rest counted


@dataclass(frozen=True)
class CityscapesTree:
    """One split of a Cityscapes-layout tree.

    image_dir: `leftImg8bit/<split>`, one folder per city.
    gt_dir: `gtFine/<split>`, or None for a split without ground truth (the test images).
    source: where instances come from, "png" (instance images) or "json" (polygons).
    """

    image_dir: str
    gt_dir: Optional[str] = None
    source: str = "png"

    def __post_init__(self):
        if self.source not in GT_SUFFIXES:
            raise ValueError(f"Cityscapes source={self.source!r}: expected one of {sorted(GT_SUFFIXES)}")

    def image_files(self) -> list[str]:
        """Every `*_leftImg8bit.png` under image_dir/<city>/, sorted."""
        files = sorted(glob.glob(os.path.join(self.image_dir, "*", "*" + IMAGE_SUFFIX)))
        if not files:
            raise FileNotFoundError(
                f"No Cityscapes images (<city>/*{IMAGE_SUFFIX}) under '{self.image_dir}'; see datasets/README.md"
            )
        return files

    def gt_file(self, image_file: str) -> str:
        """The ground-truth file of `image_file` that `source` names."""
        if self.gt_dir is None:
            raise ValueError(f"'{self.image_dir}' is registered without ground truth (gt_dir=None)")
        city, base = os.path.basename(os.path.dirname(image_file)), os.path.basename(image_file)
        if not base.endswith(IMAGE_SUFFIX):
            raise ValueError(f"'{image_file}' is not a Cityscapes image name (*{IMAGE_SUFFIX})")
        return os.path.join(self.gt_dir, city, base[: -len(IMAGE_SUFFIX)] + GT_SUFFIXES[self.source])

    def instance_ids(self, image_file: str) -> np.ndarray:
        """(H, W) int32 instance image of `image_file`: read, or drawn from its polygons."""
        gt_file = self.gt_file(image_file)
        if not os.path.isfile(gt_file):
            raise FileNotFoundError(f"Ground truth of '{image_file}' is missing: '{gt_file}'")
        if self.source == "json":
            return draw_instance_ids(read_polygons(gt_file), gt_file)
        try:
            with Image.open(gt_file) as image:
                check_instance_image_mode(image, gt_file)
                return np.asarray(image, dtype=np.int32)
        except OSError as error:
            raise OSError(f"Cannot read the instance image '{gt_file}': {error}") from error

    def check_ground_truth(self, gt_files: Sequence[str]) -> None:
        """ValueError listing each of `gt_files` that cannot be parsed, with its fault: an instance
        image not 16-bit single-channel (its header read: cheap), or one PIL cannot open; a polygons
        json that does not parse or holds an object that cannot be drawn (read whole)."""
        problems = []
        for gt_file in gt_files:
            try:
                if self.source == "json":
                    annotation = read_polygons(gt_file)
                    for _ in _drawn_objects(annotation, gt_file):  # each object checked, nothing drawn
                        pass
                else:
                    with Image.open(gt_file) as image:
                        check_instance_image_mode(image, gt_file)
            except ValueError as error:
                problems.append(str(error))
            except OSError as error:
                problems.append(f"Cannot read the instance image '{gt_file}': {error}")
        if problems:
            listed = "\n  ".join(problems[:MAX_LISTED])
            more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
            raise ValueError(
                f"{len(problems)} of the {len(gt_files)} Cityscapes ground-truth files under '{self.gt_dir}' "
                f"cannot be parsed:\n  {listed}{more}"
            )


def check_instance_image_mode(image: Image.Image, gt_file: str) -> None:
    """ValueError naming `gt_file`, its mode and the expected ones unless the opened `image` is a
    16-bit single-channel instance image."""
    if image.mode not in INSTANCE_IMAGE_MODES:
        raise ValueError(
            f"'{gt_file}': PIL mode {image.mode!r}, expected a 16-bit single-channel instance image "
            f"(mode {' or '.join(map(repr, INSTANCE_IMAGE_MODES))}) holding label id x 1000 + instance"
        )


def read_polygons(json_file: str) -> dict:
    """A `*_gtFine_polygons.json`: {"imgHeight", "imgWidth", "objects": [{"label", "polygon", ...}]}."""
    try:
        with open(json_file) as f:
            annotation = json.load(f)
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot read the polygons json '{json_file}': {error}") from error
    missing = [key for key in ("imgHeight", "imgWidth", "objects") if key not in annotation]
    if missing:
        raise ValueError(f"'{json_file}' is not a Cityscapes polygons json: it has no {missing}")
    size = (annotation["imgHeight"], annotation["imgWidth"])
    if not all(isinstance(n, int) and n > 0 for n in size) or not isinstance(annotation["objects"], list):
        raise ValueError(
            f"'{json_file}': imgHeight, imgWidth {size} are not positive integers or objects is not a list"
        )
    return annotation


def _drawn_objects(annotation: dict, json_file: str):
    """(label, is_group, polygon) of each object the official tools draw, in drawing order: deleted
    objects and labels with a negative id (license plates) are skipped; "<label>group" is a group."""
    for index, obj in enumerate(annotation["objects"]):
        if not isinstance(obj, dict) or "label" not in obj:
            raise ValueError(f"'{json_file}', object {index}: no label in {obj!r:.80}")
        if obj.get("deleted", 0):
            continue
        name, is_group = obj["label"], False
        if name not in name2label and name.endswith("group"):
            name, is_group = name[: -len("group")], True
        if name not in name2label:
            raise ValueError(f"'{json_file}', object {index}: unknown Cityscapes label '{obj['label']}'")
        label = name2label[name]
        if label.id < 0:
            continue
        polygon = obj.get("polygon")
        # the coordinates are drawn as given (integers in Cityscapes): PIL rounds floats its own way
        if not isinstance(polygon, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) for v in p) for p in polygon
        ):
            raise ValueError(f"'{json_file}', object {index} ({obj['label']}): invalid polygon {polygon!r:.80}")
        yield label, is_group, [tuple(point) for point in polygon]


def draw_instance_ids(annotation: dict, json_file: str = "<polygons>") -> np.ndarray:
    """(H, W) int32 instance image drawn from a polygons annotation as the official `json2instanceImg`:
    background 0, objects in order, each over the earlier ones; instances of a class numbered
    `id * 1000 + k` in drawing order, groups and classes without instances drawn with the label id."""
    image = Image.new("I", (annotation["imgWidth"], annotation["imgHeight"]), name2label["unlabeled"].id)
    draw = ImageDraw.Draw(image)
    instances_drawn: dict[str, int] = {}
    for label, is_group, polygon in _drawn_objects(annotation, json_file):
        value = label.id
        if label.hasInstances and not is_group:
            value = label.id * 1000 + instances_drawn.get(label.name, 0)
            instances_drawn[label.name] = instances_drawn.get(label.name, 0) + 1
        draw.polygon(polygon, fill=value)
    return np.asarray(image, dtype=np.int32)


def draw_label_ids(annotation: dict, json_file: str = "<polygons>") -> np.ndarray:
    """(H, W) uint8 label-id image drawn as the official `json2labelImg` (its "ids" encoding)."""
    image = Image.new("L", (annotation["imgWidth"], annotation["imgHeight"]), name2label["unlabeled"].id)
    draw = ImageDraw.Draw(image)
    for label, _, polygon in _drawn_objects(annotation, json_file):
        draw.polygon(polygon, fill=label.id)
    return np.asarray(image, dtype=np.uint8)


def instance_annotations(instance_ids: np.ndarray) -> list[dict]:
    """detectron2 annotations of the evaluated regions of an instance image, in ascending value."""
    annotations = []
    for value in np.unique(instance_ids[instance_ids >= min(THING_LABEL_IDS)]).tolist():
        label_id = label_id_of(value)
        if label_id not in THING_LABEL_IDS:
            continue
        mask = instance_ids == value
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        annotations.append(
            {
                "iscrowd": value < 1000,
                "category_id": THING_LABEL_IDS.index(label_id),
                "bbox": [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1],
                "bbox_mode": BoxMode.XYXY_ABS,
                "segmentation": mask_util.encode(np.asfortranarray(mask[:, :, None], dtype=np.uint8))[0],
            }
        )
    return annotations


def image_record(tree: CityscapesTree, image_file: str) -> dict:
    """The dataset dict of one image: with `annotations` where the tree has ground truth."""
    record = {"file_name": image_file, "image_id": os.path.basename(image_file)}
    if tree.gt_dir is None:
        with Image.open(image_file) as image:
            record["width"], record["height"] = image.size
        return record
    instance_ids = tree.instance_ids(image_file)
    record["height"], record["width"] = instance_ids.shape
    record["annotations"] = instance_annotations(instance_ids)
    return record


def load_cityscapes_instances(
    tree: CityscapesTree, cache_dir: Optional[str] = None, num_workers: Optional[int] = None
) -> list[dict]:
    """Every image's record, parsed in `num_workers` processes (default: up to 8), or read from
    `cache_dir` while the files are unchanged. Ground truth that cannot be parsed is refused first,
    in this process (`CityscapesTree.check_ground_truth`)."""
    images = tree.image_files()
    sources = images if tree.gt_dir is None else [tree.gt_file(f) for f in images]
    image_dir = os.path.abspath(tree.image_dir)
    return load_cached(
        # one cache per tree and source: the split's folder name and a digest of its path
        name=f"cityscapes-{os.path.basename(image_dir)}-{tree.source}-{hashlib.sha1(image_dir.encode()).hexdigest()[:8]}",
        cache_dir=cache_dir,
        items=images,
        files=sources,
        parse=functools.partial(image_record, tree),
        version=RECORDS_VERSION,
        num_workers=num_workers,
        check=None if tree.gt_dir is None else tree.check_ground_truth,
    )


def cityscapes_metadata(tree: CityscapesTree) -> dict:
    """The metadata of a registered Cityscapes-layout split (what its evaluator and checks read)."""
    return dict(
        thing_classes=list(THING_CLASSES),
        # dataset ids are the official label ids (what the evaluation writes)
        thing_dataset_id_to_contiguous_id={label_id: i for i, label_id in enumerate(THING_LABEL_IDS)},
        image_dir=tree.image_dir,
        gt_dir=tree.gt_dir,
        cityscapes_source=tree.source,
        evaluator_type=EVALUATOR_TYPE,
        mask_format="bitmask",  # RLE masks: the config checks require INPUT.MASK_FORMAT to match
    )


def tree_from_metadata(dataset_name: str) -> CityscapesTree:
    """The tree a dataset was registered from: by `register_cityscapes_instances`, or by detectron2
    (its `cityscapes_fine_instance_seg_*` carry the same image_dir / gt_dir and instance images)."""
    meta = MetadataCatalog.get(dataset_name)
    if meta.get("image_dir", None) is None or "gt_dir" not in meta.as_dict():
        raise ValueError(f"Dataset '{dataset_name}' has no image_dir / gt_dir metadata: not a Cityscapes-layout tree")
    return CityscapesTree(meta.image_dir, meta.gt_dir, meta.get("cityscapes_source", "png"))


def register_cityscapes_instances(
    name: str,
    image_dir: str,
    gt_dir: Optional[str] = None,
    *,
    source: str = "png",
    cache_dir: Optional[str] = None,
) -> None:
    """Register a Cityscapes-layout split under `name`, evaluated by `CityscapesInstanceEvaluator`.

    Args:
        image_dir: `leftImg8bit/<split>`.
        gt_dir: `gtFine/<split>`; None for images without ground truth (records without annotations).
        source: "png" (instance images) or "json" (polygons, drawn as the official tools draw them).
        cache_dir: where the parsed records are cached (see `record_cache.load_cached`); None
            parses the tree at every load.
    """
    tree = CityscapesTree(image_dir, gt_dir, source)
    DatasetCatalog.register(name, lambda: load_cityscapes_instances(tree, cache_dir))
    MetadataCatalog.get(name).set(**cityscapes_metadata(tree))
