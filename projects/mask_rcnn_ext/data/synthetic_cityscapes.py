"""A deterministic synthetic Cityscapes tree, in the official on-disk format.

Every image is a function of `(spec, index)` alone. A street scene is drawn from polygons, listed
in a `*_gtFine_polygons.json` in drawing order as the annotators' files are: sky, buildings, road,
sidewalk and vegetation; then objects from far to near (nearer ones cut the farther ones), each
class with its own outline and colour; then the ego vehicle's bonnet at the bottom, which cuts
what it covers. From the json, `*_gtFine_instanceIds.png` (16-bit) and `*_gtFine_labelIds.png`
are drawn as the official tools draw them (`cityscapes.draw_instance_ids` / `draw_label_ids`,
equal to cityscapesscripts' `json2instanceImg` / `json2labelImg`, tests/data/test_cityscapes.py).

The hard cases of the real data are all there: group regions ("persongroup", "cargroup",
"bicyclegroup"), instances under 100 pixels (far away), caravans and trailers (instances, but
ignored in evaluation), void ("static", "ego vehicle"), license plates on cars (label id -1: not
drawn in the id images, the car shows), objects that overlap, and deleted objects (`"deleted": 1`:
in the json, not in any image). Every 4 consecutive images hold a person group, a car group, a
deleted object, a caravan or trailer and a far-away instance by design; the rest come at random
(tests/data/test_cityscapes.py finds them all in 8 images).
"""

import dataclasses
import functools
import json
import os
import shutil
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..io_utils import exclusive_lock, write_json_atomically
from .cityscapes import IMAGE_SUFFIX, LABEL_IDS_SUFFIX, draw_instance_ids, draw_label_ids
from .parallel import default_num_workers, parallel_map

GENERATOR_VERSION = 1
STAMP_FILE = "generator.json"


@dataclasses.dataclass(frozen=True)
class SyntheticCityscapesSpec:
    """What to generate for one split: `num_images` images of `height` x `width` over `cities`."""

    split: str
    num_images: int
    seed: int
    cities: tuple[str, ...]
    height: int = 256
    width: int = 512
    with_ground_truth: bool = True


# Outlines, in units of the object's height: x right of its centre, y up from its bottom (negative).
OUTLINES: dict[str, list[tuple[float, float]]] = {
    "person": [
        (-0.05, -1.0),
        (0.05, -1.0),
        (0.07, -0.88),
        (0.16, -0.82),
        (0.17, -0.45),
        (0.1, -0.45),
        (0.1, 0.0),
        (0.02, 0.0),
        (0.0, -0.4),
        (-0.02, 0.0),
        (-0.1, 0.0),
        (-0.1, -0.45),
        (-0.17, -0.45),
        (-0.16, -0.82),
        (-0.07, -0.88),
    ],
    "rider": [
        (-0.06, -1.0),
        (0.05, -1.0),
        (0.07, -0.86),
        (0.2, -0.78),
        (0.3, -0.5),
        (0.18, -0.45),
        (0.22, -0.1),
        (0.12, -0.05),
        (-0.05, -0.35),
        (-0.17, -0.4),
        (-0.17, -0.8),
        (-0.08, -0.86),
    ],
    "car": [
        (-1.1, 0.0),
        (1.1, 0.0),
        (1.1, -0.45),
        (0.62, -0.55),
        (0.4, -1.0),
        (-0.5, -1.0),
        (-0.78, -0.55),
        (-1.1, -0.45),
    ],
    "truck": [(-1.5, 0.0), (1.5, 0.0), (1.5, -0.6), (1.05, -0.65), (1.0, -0.9), (0.7, -0.9), (0.7, -1.0), (-1.5, -1.0)],
    "bus": [(-2.0, 0.0), (2.0, 0.0), (2.0, -0.9), (1.9, -1.0), (-1.9, -1.0), (-2.0, -0.9)],
    "train": [(-3.2, 0.0), (3.2, 0.0), (3.2, -0.7), (2.9, -1.0), (-3.2, -1.0)],
    "motorcycle": [
        (-0.65, 0.0),
        (-0.45, -0.5),
        (0.0, -0.65),
        (0.35, -0.8),
        (0.65, -0.4),
        (0.65, 0.0),
        (0.35, 0.0),
        (0.0, -0.3),
        (-0.35, 0.0),
    ],
    "bicycle": [(-0.6, 0.0), (-0.5, -0.6), (0.0, -0.7), (0.5, -0.6), (0.6, 0.0), (0.3, 0.0), (0.0, -0.4), (-0.3, 0.0)],
    "caravan": [(-1.3, 0.0), (1.3, 0.0), (1.3, -1.0), (-1.2, -1.0), (-1.3, -0.9)],
    "trailer": [(-1.0, 0.0), (1.0, 0.0), (1.0, -0.55), (-1.0, -0.55)],
    "license plate": [(-0.16, -0.28), (0.16, -0.28), (0.16, -0.16), (-0.16, -0.16)],
}
OUTLINES["persongroup"] = [
    (-0.6, 0.0),
    (0.6, 0.0),
    (0.62, -0.8),
    (0.4, -0.98),
    (0.15, -0.85),
    (-0.1, -1.0),
    (-0.35, -0.86),
    (-0.6, -0.95),
]
OUTLINES["cargroup"] = [(-2.6, 0.0), (2.6, 0.0), (2.6, -0.5), (1.5, -0.95), (-1.6, -1.0), (-2.6, -0.5)]
OUTLINES["bicyclegroup"] = [(-1.4, 0.0), (1.4, 0.0), (1.3, -0.65), (-1.3, -0.7)]
# Height of each kind relative to a person standing at the same depth.
RELATIVE_HEIGHT = {
    "person": 1.0,
    "rider": 0.85,
    "car": 0.85,
    "truck": 1.6,
    "bus": 1.8,
    "train": 2.2,
    "motorcycle": 0.65,
    "bicycle": 0.6,
    "caravan": 1.4,
    "trailer": 0.8,
    "persongroup": 1.0,
    "cargroup": 0.85,
    "bicyclegroup": 0.6,
}
# Base colours (RGB): one per kind, jittered per object; groups share their class's colour.
COLOURS = {
    "person": (220, 20, 60),
    "rider": (255, 200, 0),
    "car": (0, 0, 160),
    "truck": (0, 90, 100),
    "bus": (0, 120, 60),
    "train": (90, 40, 120),
    "motorcycle": (200, 0, 230),
    "bicycle": (120, 20, 40),
    "caravan": (235, 235, 220),
    "trailer": (150, 110, 90),
    "license plate": (250, 250, 250),
    "sky": (110, 160, 230),
    "building": (100, 95, 90),
    "road": (90, 90, 95),
    "sidewalk": (170, 150, 160),
    "vegetation": (70, 130, 40),
    "static": (60, 50, 30),
    "ego vehicle": (20, 20, 20),
}
COLOURS.update(persongroup=COLOURS["person"], cargroup=COLOURS["car"], bicyclegroup=COLOURS["bicycle"])
INSTANCE_KINDS = (
    "person",
    "person",
    "person",
    "rider",
    "car",
    "car",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
    "bicycle",
)  # repeats: frequent classes


def _rng(spec: SyntheticCityscapesSpec, index: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed, index])


def _place(kind: str, centre_x: float, bottom_y: float, height: float, w: int, h: int) -> list[list[int]]:
    """The outline of `kind` at a place and height, as integer image coordinates clipped to the image."""
    points = np.asarray(OUTLINES[kind]) * height + (centre_x, bottom_y)
    points = np.clip(np.round(points), 0, (w - 1, h - 1)).astype(int)
    return points.tolist()


def _scene_objects(spec: SyntheticCityscapesSpec, index: int, rng: np.random.Generator) -> list[dict]:
    """The json objects of one image, in drawing order."""
    w, h = spec.width, spec.height
    horizon = int(h * rng.uniform(0.35, 0.45))
    objects = [
        {"label": "sky", "polygon": [[0, 0], [w - 1, 0], [w - 1, horizon], [0, horizon]]},
    ]
    x = 0
    while x < w:  # a row of buildings of random widths and heights
        width, top = int(rng.uniform(0.08, 0.25) * w), int(horizon * rng.uniform(0.1, 0.7))
        objects.append(
            {
                "label": "building",
                "polygon": [[x, horizon], [min(x + width, w - 1), horizon], [min(x + width, w - 1), top], [x, top]],
            }
        )
        x += width
    objects.append({"label": "road", "polygon": [[0, horizon], [w - 1, horizon], [w - 1, h - 1], [0, h - 1]]})
    objects.append({"label": "sidewalk", "polygon": [[0, horizon], [int(w * 0.3), horizon], [0, int(h * 0.7)]]})
    for _ in range(rng.integers(1, 3)):
        cx, cy, r = rng.uniform(0, w), horizon + rng.uniform(-0.1, 0.05) * h, rng.uniform(0.03, 0.08) * w
        objects.append({"label": "vegetation", "polygon": _place("persongroup", cx, cy, r, w, h)})

    # Things: a list of (kind, extra keys), then placed from far to near.
    kinds = [str(k) for k in rng.choice(INSTANCE_KINDS, size=rng.integers(3, 8))]
    # each hard case by design in one image of every 4, and at random elsewhere
    hard = index % 4
    kinds += ["persongroup"] if hard == 0 or rng.random() < 0.2 else []
    kinds += ["cargroup"] if hard == 1 or rng.random() < 0.15 else []
    kinds += ["bicyclegroup"] if rng.random() < 0.1 else []
    kinds += [["caravan", "trailer"][index % 2]] if hard == 2 or rng.random() < 0.2 else []
    kinds += ["static"] if rng.random() < 0.5 else []
    depths = rng.uniform(0.15, 1.0, size=len(kinds)) ** 1.5  # more far than near, as on a street
    if hard == 3:
        depths[0] = 0.012  # far away: under 100 pixels
    deleted_at = int(rng.integers(len(kinds))) if hard == 1 or rng.random() < 0.2 else -1
    things = []
    for i in np.argsort(depths):
        kind, depth = kinds[i], depths[i]
        bottom = horizon + depth * (h - horizon) * 0.9 + 2
        person_height = max(6.0, depth * h * 0.4)
        cx = rng.uniform(0.05, 0.95) * w
        if kind == "static":  # void: a pole-like box on the sidewalk side
            objects.append({"label": "static", "polygon": _place("trailer", cx, bottom, person_height * 0.5, w, h)})
            continue
        obj = {"label": kind, "polygon": _place(kind, cx, bottom, person_height * RELATIVE_HEIGHT[kind], w, h)}
        if i == deleted_at:
            obj["deleted"] = 1
        things.append(obj)
        if kind == "rider":  # a rider sits on a bicycle or motorcycle drawn just before it
            vehicle = ["bicycle", "motorcycle"][int(rng.integers(2))]
            things.insert(-1, {"label": vehicle, "polygon": _place(vehicle, cx, bottom, person_height * 0.6, w, h)})
        if kind == "car" and rng.random() < 0.6:
            things.append(
                {"label": "license plate", "polygon": _place("license plate", cx, bottom, person_height * 0.85, w, h)}
            )
    objects += things
    bonnet = int(h * 0.92)
    objects.append(
        {
            "label": "ego vehicle",
            "polygon": [[0, h - 1], [w - 1, h - 1], [w - 1, bonnet + 6], [w // 2, bonnet], [0, bonnet + 6]],
        }
    )
    return objects


def render_image(annotation: dict, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of the annotation's objects (deleted ones left out), with noise."""
    image = Image.new("RGB", (annotation["imgWidth"], annotation["imgHeight"]), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    for obj in annotation["objects"]:
        if obj.get("deleted", 0):
            continue
        jitter = 25 if obj["label"] in OUTLINES else 8  # things vary more than the scenery
        colour = np.clip(np.asarray(COLOURS[obj["label"]]) + rng.integers(-jitter, jitter + 1, size=3), 0, 255)
        draw.polygon([tuple(p) for p in obj["polygon"]], fill=tuple(int(c) for c in colour), outline=(15, 15, 15))
    image = image.filter(ImageFilter.GaussianBlur(0.7))
    noisy = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, size=(image.height, image.width, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def file_prefix(spec: SyntheticCityscapesSpec, index: int) -> tuple[str, str]:
    """(city, `<city>_<sequence>_<frame>`) of image `index`, numbered as Cityscapes numbers them."""
    city = spec.cities[index % len(spec.cities)]
    return city, f"{city}_{index // len(spec.cities):06d}_{19 + index % 7:06d}"


def write_image(spec: SyntheticCityscapesSpec, root: str, index: int) -> None:
    """Write image `index` of `spec` under `root/leftImg8bit/<split>/` and, with ground truth, its
    files under `root/gtFine/<split>/`."""
    rng = _rng(spec, index)
    annotation = {"imgHeight": spec.height, "imgWidth": spec.width, "objects": _scene_objects(spec, index, rng)}
    city, prefix = file_prefix(spec, index)
    image_dir = os.path.join(root, "leftImg8bit", spec.split, city)
    os.makedirs(image_dir, exist_ok=True)
    Image.fromarray(render_image(annotation, rng)).save(os.path.join(image_dir, prefix + IMAGE_SUFFIX))
    if not spec.with_ground_truth:
        return
    gt_dir = os.path.join(root, "gtFine", spec.split, city)
    os.makedirs(gt_dir, exist_ok=True)
    with open(os.path.join(gt_dir, prefix + "_gtFine_polygons.json"), "w") as f:
        json.dump(annotation, f)
    instance_ids = draw_instance_ids(annotation).astype(np.uint16)  # the official files are 16-bit
    Image.fromarray(instance_ids).save(os.path.join(gt_dir, prefix + "_gtFine_instanceIds.png"))
    Image.fromarray(draw_label_ids(annotation)).save(os.path.join(gt_dir, prefix + LABEL_IDS_SUFFIX))


def write_split(spec: SyntheticCityscapesSpec, root: str, num_workers: Optional[int] = None) -> None:
    """Write every image of `spec` (`write_image`) in `num_workers` processes (default: a process
    per core, up to 8; each image depends on its index alone)."""
    parallel_map(
        functools.partial(write_image, spec, root),
        range(spec.num_images),
        num_workers or default_num_workers(),
        desc=f"generating synthetic Cityscapes {spec.split}",
    )


def ensure_split(spec: SyntheticCityscapesSpec, root: str) -> None:
    """Generate `spec`'s split under `root` unless it is there from the same spec and generator."""
    stamp = os.path.join(root, f"{spec.split}.{STAMP_FILE}")
    wanted = {"version": GENERATOR_VERSION, "spec": dataclasses.asdict(spec)}

    def current():
        try:
            with open(stamp) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    if current() == json.loads(json.dumps(wanted)):
        return
    os.makedirs(root, exist_ok=True)
    with exclusive_lock(os.path.join(root, f".{spec.split}.lock")):
        if current() == json.loads(json.dumps(wanted)):  # another process generated it meanwhile
            return
        if os.path.exists(stamp):
            os.remove(stamp)  # the stamp goes first: a split without one is regenerated
        for kind in ("leftImg8bit", "gtFine"):
            shutil.rmtree(os.path.join(root, kind, spec.split), ignore_errors=True)
        write_split(spec, root)
        write_json_atomically(stamp, wanted)
