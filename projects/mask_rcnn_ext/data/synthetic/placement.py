"""Images: a background and instances placed in paint order, each keeping enough of itself in view."""

import math

import numpy as np

from .people import KEYPOINT_INDEX, NUM_KEYPOINTS, draw_person
from .shapes import rasterize, shape_parts
from .spec import PERSON_CLASS, SHAPE_CLASSES, SyntheticSpec
from .textures import background, object_texture

# Placements are re-drawn this many times before an object is left out.
_PLACEMENT_TRIES = 10


def _rng(spec: SyntheticSpec, index: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed, index])


def _log_uniform(rng, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _propose_instance(rng, spec: SyntheticSpec, category: str, h: int, w: int) -> dict:
    """One instance drawn at a random place, possibly partly outside the image.

    Returns a dict with "mask" ((h, w) bool, the part inside the image), "whole_area" (pixels of
    the whole instance), "texture", "palette" and, for people, "keypoints" and "facing_camera".
    """
    pad = spec.max_person_height  # room around the image for any instance's outside part
    if category == PERSON_CLASS:
        height = _log_uniform(rng, spec.min_person_height, min(spec.max_person_height, 0.95 * h))
        facing_camera = bool(rng.random() < 0.8)
        # Feet may be below the image (legs cut off); the body may leave it sideways.
        foot = (rng.uniform(-0.1 * w, 1.1 * w), rng.uniform(0.6 * height, h + 0.3 * height))
        mask, whole_area, texture, palette, keypoints = draw_person(
            rng, h, w, pad, height, facing_camera, rng.uniform(-0.25, 0.25), foot
        )
        return dict(
            category=category,
            mask=mask,
            whole_area=whole_area,
            texture=texture,
            palette=palette,
            keypoints=keypoints,
            facing_camera=facing_camera,
        )
    size = _log_uniform(rng, spec.min_object_size, spec.max_object_size)
    centre = (rng.uniform(-0.1 * size, w + 0.1 * size), rng.uniform(-0.1 * size, h + 0.1 * size))
    parts = shape_parts(rng, category)
    mask, whole_area = rasterize(parts, h, w, pad, size, rng.uniform(0, 2 * math.pi), rng.uniform(0.8, 1.25), centre)
    texture, palette = object_texture(rng, h, w)
    return dict(category=category, mask=mask, whole_area=whole_area, texture=texture, palette=palette)


def _visible_enough(spec: SyntheticSpec, visible: np.ndarray, whole_area: int) -> bool:
    """Whether the `visible` pixels of an instance of `whole_area` pixels are enough to annotate."""
    area = int(visible.sum())
    return area >= spec.min_visible_pixels and area >= spec.min_visible_fraction * whole_area


def render_sample(spec: SyntheticSpec, index: int) -> tuple[np.ndarray, list[dict]]:
    """Render image `index` of `spec`.

    Returns:
        image: (H, W, 3) uint8 RGB.
        instances: in paint order, dicts with
            "category": a name of THING_CLASSES,
            "visible_mask": (H, W) bool, the pixels showing this instance,
            "palette": the RGB colours its pixels carry (each +- TEXTURE_NOISE per channel),
            "keypoints": (17, 3) float [x, y, v] in COCO conventions (zeros unless a person),
            "facing_camera": bool (people only).
    """
    rng = _rng(spec, index)
    h, w = (int(v) for v in rng.integers(spec.min_side, spec.max_side + 1, size=2))
    image = background(rng, h, w)
    categories = [
        str(c) for c in rng.choice(SHAPE_CLASSES, size=int(rng.integers(spec.min_objects, spec.max_objects + 1)))
    ]
    if rng.random() < spec.person_probability:
        categories += [PERSON_CLASS] * int(rng.integers(spec.min_people, spec.max_people + 1))
    rng.shuffle(categories)

    placed: list[dict] = []
    for category in categories:
        for _ in range(_PLACEMENT_TRIES):
            candidate = _propose_instance(rng, spec, category, h, w)
            full = candidate["mask"]
            # Border and occlusion both count: each instance keeps enough of its whole self in view.
            if not _visible_enough(spec, full, candidate["whole_area"]) or not all(
                _visible_enough(spec, p["visible_mask"] & ~full, p["whole_area"]) for p in placed
            ):
                continue
            for p in placed:
                p["visible_mask"] &= ~full
            candidate["visible_mask"] = full.copy()
            image[full] = candidate["texture"][full]
            placed.append(candidate)
            break

    instances = []
    for p in placed:
        keypoints = np.zeros((NUM_KEYPOINTS, 3))
        if p["category"] == PERSON_CLASS:
            for i, (x, y) in enumerate(p["keypoints"]):
                if 0 <= x < w and 0 <= y < h:
                    keypoints[i] = (x, y, 2 if p["visible_mask"][y, x] else 1)
            if not p["facing_camera"]:
                # not seen from behind
                keypoints[[KEYPOINT_INDEX[name] for name in ("nose", "left_eye", "right_eye")]] = 0
        instance = dict(
            category=p["category"], visible_mask=p["visible_mask"], palette=p["palette"], keypoints=keypoints
        )
        if p["category"] == PERSON_CLASS:
            instance["facing_camera"] = p["facing_camera"]
        instances.append(instance)
    return image, instances
