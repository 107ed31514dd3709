"""A deterministic synthetic instance-segmentation + person-keypoint dataset, in COCO format.

Every image is a function of `(spec, index)` alone, so a split regenerates bit-for-bit on any
machine. An image holds:

* a textured background (stripes, checks, smooth noise) with unannotated clutter (lines,
  rectangles, dots) in the same colours the objects use, so colour alone never tells an object;
* 2-8 objects of six shape classes told apart by outline only: star, crescent, ring (with a
  hole), Fourier blob, rounded cross, horseshoe; random colour/texture, rotation, aspect and
  size (24-140 px), some cut by the image border;
* often people (80-220 px tall, `SyntheticSpec` says how many) carrying the 17 COCO keypoints,
  dressed in a T-shirt and shorts so that each limb joint shows as on a real body: elbows and
  knees where cloth meets skin, wrists and ankles at hands and shoes. About 80% face the camera
  (the person's left is on the image's right; a face is drawn), the rest show their back
  (mirrored left/right; eyes and nose unlabelled, v=0). A keypoint covered by a later object
  is labelled v=1, one outside the image is v=0 with x=y=0, as in COCO.

Objects are composited in order; each annotation's mask is the instance's *visible* part, so the
masks partition the image's foreground exactly. A placement is re-drawn when it would leave any
instance (itself included: the image border cuts too) with less than `min_visible_fraction` of
its whole area in view. Masks are written as a COCO polygon when
the visible part is one simple region and the polygon reproduces it pixel for pixel, else as RLE
(rings, fragments left by occlusion); either way the annotation decodes to exactly the mask.
"""

import contextlib
import dataclasses
import json
import math
import os
import shutil
from typing import Optional

import cv2
import numpy as np
from pycocotools import mask as mask_util

from ..io_utils import exclusive_lock, write_json_atomically

# Bump when the generated content changes for the same spec: cached splits then regenerate.
GENERATOR_VERSION = 2

PERSON_CLASS = "person"
SHAPE_CLASSES = ("star", "crescent", "ring", "blob", "cross", "horseshoe")
THING_CLASSES = (PERSON_CLASS,) + SHAPE_CLASSES  # COCO category id = index + 1

COCO_KEYPOINT_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
COCO_KEYPOINT_FLIP_MAP = tuple(
    (name, "right_" + name[len("left_") :]) for name in COCO_KEYPOINT_NAMES if name.startswith("left_")
)
# COCO's person skeleton, 1-based keypoint indices as in person_keypoints_*.json.
COCO_SKELETON = (
    (16, 14),
    (14, 12),
    (17, 15),
    (15, 13),
    (12, 13),
    (6, 12),
    (7, 13),
    (6, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (9, 11),
    (2, 3),
    (1, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
    (5, 7),
)
NUM_KEYPOINTS = len(COCO_KEYPOINT_NAMES)
_KP = {name: i for i, name in enumerate(COCO_KEYPOINT_NAMES)}

# A palette shared by background, clutter and objects (RGB).
_PALETTE = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (250, 190, 212),
        (0, 128, 128),
        (220, 190, 255),
        (170, 110, 40),
        (255, 250, 200),
        (128, 0, 0),
        (170, 255, 195),
        (128, 128, 0),
        (255, 215, 180),
        (0, 0, 128),
        (128, 128, 128),
        (255, 255, 255),
        (20, 20, 20),
    ],
    dtype=np.int16,
)
# Object textures are palette colours plus noise of at most this amplitude (per channel).
TEXTURE_NOISE = 8
# Placements are re-drawn this many times before an object is left out.
_PLACEMENT_TRIES = 10


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. Two equal specs give identical splits.

    Attributes:
        num_images: images in the split.
        seed: base seed; image `i` uses the seed sequence (seed, i).
        min_side, max_side: image height and width are drawn from [min_side, max_side].
        min_objects, max_objects: shape objects per image (before placement rejections).
        person_probability: chance that an image has people.
        min_people, max_people: people in an image that has people.
        min_object_size, max_object_size: object diameter in pixels (log-uniform).
        min_person_height, max_person_height: stick-figure height in pixels.
        min_visible_fraction: an instance keeps at least this fraction of itself visible.
        min_visible_pixels: an instance keeps at least this many visible pixels.
    """

    num_images: int
    seed: int
    min_side: int = 224
    max_side: int = 320
    min_objects: int = 2
    max_objects: int = 8
    person_probability: float = 0.6
    min_people: int = 1
    max_people: int = 2
    min_object_size: int = 24
    max_object_size: int = 140
    min_person_height: int = 80
    max_person_height: int = 220
    min_visible_fraction: float = 0.4
    min_visible_pixels: int = 25


# ----------------------------------------------------------------------------------------------
# Textures


def _colour(rng: np.random.Generator) -> np.ndarray:
    return _PALETTE[rng.integers(len(_PALETTE))]


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """(h, w) float32 noise in [0, 1] varying over `cell` pixels."""
    coarse = rng.random((h // cell + 2, w // cell + 2)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _pattern_mask(rng: np.random.Generator, h: int, w: int, kind: str, period: int) -> np.ndarray:
    """(h, w) bool: which pixels take the second colour of a two-colour pattern."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "stripes":
        angle = rng.uniform(0, math.pi)
        phase = (xx * math.cos(angle) + yy * math.sin(angle)) / period
        return (np.floor(phase) % 2).astype(bool)
    if kind == "checks":
        return ((np.floor(xx / period) + np.floor(yy / period)) % 2).astype(bool)
    if kind == "blotches":
        return _smooth_noise(rng, h, w, period) > 0.5
    raise ValueError(kind)


def object_texture(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, list[tuple]]:
    """A (h, w, 3) uint8 texture made of 1-2 palette colours plus noise <= TEXTURE_NOISE.

    Returns the texture and its palette (the colours before noise), which tests use to check
    that annotated pixels carry their object's colours.
    """
    first = _colour(rng)
    kind = rng.choice(["flat", "stripes", "checks", "blotches"], p=[0.5, 0.5 / 3, 0.5 / 3, 0.5 / 3])
    if kind == "flat":
        base = np.broadcast_to(first, (h, w, 3)).copy()
        palette = [first]
    else:
        second = _colour(rng)
        while np.array_equal(second, first):
            second = _colour(rng)
        base = np.where(_pattern_mask(rng, h, w, kind, int(rng.integers(4, 12)))[..., None], second, first)
        palette = [first, second]
    noise = rng.integers(-TEXTURE_NOISE, TEXTURE_NOISE + 1, size=(h, w, 3), dtype=np.int16)
    texture = (base + noise).clip(0, 255).astype(np.uint8)
    return texture, [tuple(int(c) for c in p) for p in palette]


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) uint8: a large-scale pattern, shading, noise and unannotated clutter."""
    first, second = _colour(rng), _colour(rng)
    kind = rng.choice(["stripes", "checks", "blotches"])
    pattern = _pattern_mask(rng, h, w, kind, int(rng.integers(8, 40)))
    image = np.where(pattern[..., None], second, first).astype(np.float32)
    # Mute the pattern towards grey so objects usually (not always) stand out from it.
    image = 0.25 * image + 0.75 * 128
    image *= (0.6 + 0.8 * _smooth_noise(rng, h, w, 48))[..., None]
    image += rng.normal(0, 6, size=image.shape)
    image = image.clip(0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(2, 9))):
        colour = tuple(int(c) for c in _colour(rng))
        kind = rng.integers(3)
        x, y = int(rng.integers(w)), int(rng.integers(h))
        if kind == 0:  # line
            x2, y2 = int(rng.integers(w)), int(rng.integers(h))
            cv2.line(image, (x, y), (x2, y2), colour, int(rng.integers(1, 4)))
        elif kind == 1:  # axis-aligned rectangle: no shape class looks like one
            rw, rh = int(rng.integers(4, 30)), int(rng.integers(4, 30))
            cv2.rectangle(image, (x, y), (x + rw, y + rh), colour, -1)
        else:  # dot
            cv2.circle(image, (x, y), int(rng.integers(1, 5)), colour, -1)
    return image


# ----------------------------------------------------------------------------------------------
# Shapes: lists of (polygon in a unit frame centred on 0, value) painted in order, value 1 adds
# to the shape and 0 cuts it out.


def _circle(radius: float, centre=(0.0, 0.0), n: int = 48) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([centre[0] + radius * np.cos(t), centre[1] + radius * np.sin(t)], axis=1)


def _stadium(length: float, width: float, n: int = 12) -> np.ndarray:
    """A horizontal bar with round ends, `length` long end to end."""
    r, half = width / 2, length / 2 - width / 2
    right = np.linspace(-math.pi / 2, math.pi / 2, n)
    left = right + math.pi
    return np.concatenate(
        [
            np.stack([half + r * np.cos(right), r * np.sin(right)], axis=1),
            np.stack([-half + r * np.cos(left), r * np.sin(left)], axis=1),
        ]
    )


def _shape_parts(rng: np.random.Generator, shape: str) -> list[tuple[np.ndarray, int]]:
    if shape == "star":
        points = int(rng.integers(5, 9))
        inner = rng.uniform(0.35, 0.6)
        t = np.arange(2 * points) * math.pi / points
        r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
        return [(np.stack([r * np.cos(t), r * np.sin(t)], axis=1), 1)]
    if shape == "crescent":
        offset = rng.uniform(0.35, 0.6)
        return [(_circle(1.0), 1), (_circle(rng.uniform(0.75, 0.95), (offset, 0.0)), 0)]
    if shape == "ring":
        return [(_circle(1.0), 1), (_circle(rng.uniform(0.35, 0.6), (rng.uniform(-0.1, 0.1), 0)), 0)]
    if shape == "blob":
        t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
        r = np.ones_like(t)
        for k in (2, 3, 4):
            r += rng.uniform(0.08, 0.22) * np.cos(k * t + rng.uniform(0, 2 * math.pi))
        r /= r.max()
        return [(np.stack([r * np.cos(t), r * np.sin(t)], axis=1), 1)]
    if shape == "cross":
        width = rng.uniform(0.35, 0.5)
        return [(_stadium(2.0, width), 1), (_stadium(2.0 * rng.uniform(0.7, 1.0), width)[:, ::-1], 1)]
    if shape == "horseshoe":
        span = math.radians(rng.uniform(200, 290))
        thickness = rng.uniform(0.3, 0.45)
        t = np.linspace(-span / 2, span / 2, 40)
        inner = 1.0 - thickness
        arc = np.concatenate(
            [np.stack([np.cos(t), np.sin(t)], 1), np.stack([inner * np.cos(t[::-1]), inner * np.sin(t[::-1])], 1)]
        )
        mid = 1.0 - thickness / 2
        caps = [(_circle(thickness / 2, (mid * math.cos(a), mid * math.sin(a)), 16), 1) for a in (-span / 2, span / 2)]
        return [(arc, 1)] + caps
    raise ValueError(f"unknown shape {shape!r}")


def _crop(canvas: np.ndarray, pad: int, h: int, w: int) -> tuple[np.ndarray, int]:
    """The image part of a canvas drawn with `pad` pixels around the image, and the pixel count of
    everything drawn, in the image or not (what visibility fractions are measured against)."""
    return canvas[pad : pad + h, pad : pad + w], int(np.count_nonzero(canvas))


def _rasterize(parts, h: int, w: int, pad: int, size: float, angle: float, aspect: float, centre):
    """`parts` scaled to diameter `size`, stretched, rotated and placed at `centre` (image pixels).

    Returns the (h, w) bool mask inside the image and the whole shape's area (see `_crop`)."""
    c, s = math.cos(angle), math.sin(angle)
    transform = np.array([[c, -s], [s, c]]) @ np.diag([aspect, 1.0 / aspect]) * (size / 2)
    canvas = np.zeros((h + 2 * pad, w + 2 * pad), np.uint8)
    for polygon, value in parts:
        pixels = polygon @ transform.T + np.asarray(centre) + pad
        cv2.fillPoly(canvas, [np.round(pixels * 16).astype(np.int32)], value, shift=4)
    mask, whole_area = _crop(canvas, pad, h, w)
    return mask.astype(bool), whole_area


# ----------------------------------------------------------------------------------------------
# People


def _person_keypoints(rng: np.random.Generator, height: float, facing_camera: bool) -> np.ndarray:
    """(17, 2) keypoint positions in a frame with the feet at y=0 and the body centred on x=0."""
    k = np.zeros((NUM_KEYPOINTS, 2))
    head_r = 0.07 * height
    # Viewed from the front the person's left is on the image's right.
    side = 1.0 if facing_camera else -1.0
    head = np.array([0.0, -height + head_r])
    k[_KP["nose"]] = head + (0, 0.25 * head_r)
    k[_KP["left_eye"]] = head + (side * 0.4 * head_r, -0.2 * head_r)
    k[_KP["right_eye"]] = head + (-side * 0.4 * head_r, -0.2 * head_r)
    k[_KP["left_ear"]] = head + (side * 0.85 * head_r, 0)
    k[_KP["right_ear"]] = head + (-side * 0.85 * head_r, 0)
    shoulder_y, hip_y = -0.8 * height, -0.47 * height
    for name, sign in (("left", side), ("right", -side)):
        shoulder = np.array([sign * 0.12 * height, shoulder_y])
        hip = np.array([sign * 0.08 * height, hip_y])
        # Angles are measured from straight down, outwards positive.
        upper_arm = rng.uniform(-0.3, 2.6)
        forearm = upper_arm + rng.uniform(-0.3, 1.8)
        thigh = rng.uniform(-0.2, 0.6)
        shin = thigh - rng.uniform(0.0, 0.6)
        elbow = shoulder + 0.17 * height * np.array([sign * math.sin(upper_arm), math.cos(upper_arm)])
        wrist = elbow + 0.15 * height * np.array([sign * math.sin(forearm), math.cos(forearm)])
        knee = hip + 0.24 * height * np.array([sign * math.sin(thigh), math.cos(thigh)])
        ankle = knee + 0.22 * height * np.array([sign * math.sin(shin), math.cos(shin)])
        for joint, point in (
            ("shoulder", shoulder),
            ("elbow", elbow),
            ("wrist", wrist),
            ("hip", hip),
            ("knee", knee),
            ("ankle", ankle),
        ):
            k[_KP[f"{name}_{joint}"]] = point
    k[:, 1] -= k[:, 1].max()  # the lowest ankle stands on y=0
    return k


def _draw_person(rng, h: int, w: int, pad: int, height: float, facing_camera: bool, angle: float, foot):
    """Draw a stick figure standing on `foot` (image pixels).

    Returns the (h, w) bool mask inside the image, the whole figure's area (see `_crop`), its
    (h, w, 3) texture and palette, and its (17, 2) int keypoints: integer pixel indices (the COCO
    convention) that lie on drawn pixels; some may be outside the image.
    """
    local = _person_keypoints(rng, height, facing_camera)
    c, s = math.cos(angle), math.sin(angle)
    keypoints = np.round(local @ np.array([[c, -s], [s, c]]).T + np.asarray(foot)).astype(int)
    on_canvas = keypoints + pad
    head_r = max(2, int(round(0.07 * height)))
    arm, leg = (max(2, int(round(f * height))) for f in (0.05, 0.065))
    extremity_r = max(2, int(round(0.035 * height)))  # hands and shoes
    skin, hair, trousers, shoes = _colour(rng), _colour(rng), _colour(rng), _colour(rng)
    kp = {name: tuple(int(v) for v in on_canvas[i]) for name, i in _KP.items()}
    # Each body part is drawn into its own label image: 1 head, 2 shirt, 3 trousers, 4 face marks,
    # 5 skin (forearms, hands, shins), 6 shoes. As on a person in a T-shirt and shorts, every limb
    # joint shows: elbows and knees where cloth meets skin, wrists and ankles at hands and shoes.
    canvas = np.zeros((h + 2 * pad, w + 2 * pad), np.uint8)
    neck = tuple((np.add(kp["left_shoulder"], kp["right_shoulder"]) // 2).tolist())
    head_centre = tuple((np.add(kp["left_ear"], kp["right_ear"]) // 2).tolist())
    cv2.line(canvas, head_centre, neck, 2, arm)
    for side in ("left", "right"):
        cv2.line(canvas, kp[f"{side}_knee"], kp[f"{side}_ankle"], 5, leg)
        cv2.line(canvas, kp[f"{side}_hip"], kp[f"{side}_knee"], 3, leg)
        cv2.circle(canvas, kp[f"{side}_ankle"], extremity_r, 6, -1)
    torso = np.array([kp["left_shoulder"], kp["right_shoulder"], kp["right_hip"], kp["left_hip"]], np.int32)
    cv2.fillPoly(canvas, [torso], 2)
    for side in ("left", "right"):
        cv2.line(canvas, kp[f"{side}_elbow"], kp[f"{side}_wrist"], 5, arm)
        cv2.line(canvas, kp[f"{side}_shoulder"], kp[f"{side}_elbow"], 2, arm)
        cv2.circle(canvas, kp[f"{side}_wrist"], extremity_r, 5, -1)
    cv2.circle(canvas, head_centre, head_r, 1, -1)
    if facing_camera:
        dot = max(1, head_r // 5)
        for name in ("left_eye", "right_eye", "nose"):
            cv2.circle(canvas, kp[name], dot, 4, -1)
    labels, whole_area = _crop(canvas, pad, h, w)
    texture, palette = object_texture(rng, h, w)  # the shirt's
    colours = {1: skin if facing_camera else hair, 3: trousers, 4: np.array((20, 20, 20)), 5: skin, 6: shoes}
    noise = rng.integers(-TEXTURE_NOISE, TEXTURE_NOISE + 1, size=(h, w, 3), dtype=np.int16)
    for label, colour in colours.items():
        texture[labels == label] = (colour + noise[labels == label]).clip(0, 255).astype(np.uint8)
        palette.append(tuple(int(v) for v in colour))
    return labels > 0, whole_area, texture, palette, keypoints


# ----------------------------------------------------------------------------------------------
# Images


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
        mask, whole_area, texture, palette, keypoints = _draw_person(
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
    parts = _shape_parts(rng, category)
    mask, whole_area = _rasterize(parts, h, w, pad, size, rng.uniform(0, 2 * math.pi), rng.uniform(0.8, 1.25), centre)
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
                keypoints[[_KP["nose"], _KP["left_eye"], _KP["right_eye"]]] = 0  # not seen from behind
        instance = dict(
            category=p["category"], visible_mask=p["visible_mask"], palette=p["palette"], keypoints=keypoints
        )
        if p["category"] == PERSON_CLASS:
            instance["facing_camera"] = p["facing_camera"]
        instances.append(instance)
    return image, instances


# ----------------------------------------------------------------------------------------------
# COCO format


def mask_to_segmentation(mask: np.ndarray):
    """COCO segmentation of a (H, W) bool mask: a polygon when the mask is one simple region that
    the polygon reproduces exactly under pycocotools' rasterizer, else compressed RLE."""
    h, w = mask.shape
    # Contours run through the centres of boundary pixels; tracing the mask at twice the
    # resolution puts them a quarter pixel inside the pixel edges, close enough to rasterize back.
    doubled = cv2.resize(mask.astype(np.uint8), (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(doubled, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if len(contours) == 1:
        contour = cv2.approxPolyDP(contours[0], 0.5, True).reshape(-1, 2)
        polygon = ((contour.astype(np.float64) + 0.5) / 2).flatten().tolist()
        if len(polygon) >= 6:
            drawn = mask_util.decode(mask_util.frPyObjects([polygon], h, w))[..., 0].astype(bool)
            if np.array_equal(drawn, mask):
                return [polygon]
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def coco_categories() -> list[dict]:
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(THING_CLASSES)]
    categories[0].update(
        supercategory="person", keypoints=list(COCO_KEYPOINT_NAMES), skeleton=[list(p) for p in COCO_SKELETON]
    )
    return categories


def coco_annotations(instances: list[dict], image_id: int, first_id: int) -> list[dict]:
    """COCO annotation dicts for `render_sample`'s instances; ids count up from `first_id`."""
    annotations = []
    for offset, inst in enumerate(instances):
        mask = inst["visible_mask"]
        ys, xs = np.nonzero(mask)
        keypoints = inst["keypoints"]
        annotations.append(
            {
                "id": first_id + offset,
                "image_id": image_id,
                "category_id": THING_CLASSES.index(inst["category"]) + 1,
                "segmentation": mask_to_segmentation(mask),
                "area": int(mask.sum()),
                "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)],
                "iscrowd": 0,
                "keypoints": [int(v) for v in keypoints.flatten()],
                "num_keypoints": int((keypoints[:, 2] > 0).sum()),
            }
        )
    return annotations


def write_coco_split(spec: SyntheticSpec, image_dir: str, json_path: str) -> None:
    """Render every image of `spec` as PNG into `image_dir` and write the COCO json (atomically,
    last, so a json on disk always describes a complete image folder)."""
    os.makedirs(image_dir, exist_ok=True)
    images, annotations = [], []
    for index in range(spec.num_images):
        image, instances = render_sample(spec, index)
        file_name = f"{index:06d}.png"
        cv2.imwrite(os.path.join(image_dir, file_name), image[:, :, ::-1])
        images.append({"id": index + 1, "file_name": file_name, "height": image.shape[0], "width": image.shape[1]})
        annotations += coco_annotations(instances, index + 1, len(annotations) + 1)
    info = {"description": "mask_rcnn_ext synthetic data", "generator": _generator_id(spec)}
    write_json_atomically(
        json_path, {"info": info, "images": images, "annotations": annotations, "categories": coco_categories()}
    )


def _generator_id(spec: SyntheticSpec) -> dict:
    return {"version": GENERATOR_VERSION, "spec": dataclasses.asdict(spec)}


def _cached_generator_id(json_path: str) -> Optional[dict]:
    try:
        with open(json_path) as f:
            return json.load(f).get("info", {}).get("generator")
    except (OSError, ValueError):
        return None


def ensure_coco_split(spec: SyntheticSpec, root: str, split: str) -> tuple[str, str]:
    """Make sure `root/<split>.json` and `root/<split>/` hold `spec`'s data; generate if not.

    Regenerates when the cached split was made from another spec or generator version.
    Returns (json_path, image_dir).
    """
    json_path, image_dir = os.path.join(root, f"{split}.json"), os.path.join(root, split)
    if _cached_generator_id(json_path) == _generator_id(spec):
        return json_path, image_dir
    os.makedirs(root, exist_ok=True)
    with exclusive_lock(os.path.join(root, f".{split}.lock")):
        if _cached_generator_id(json_path) != _generator_id(spec):  # another process may have won
            staging_dir, staging_json = os.path.join(root, f".{split}.staging"), f"{json_path}.staging"
            shutil.rmtree(staging_dir, ignore_errors=True)
            write_coco_split(spec, staging_dir, staging_json)
            with contextlib.suppress(FileNotFoundError):
                os.remove(json_path)  # the json goes first: without it the folder counts as stale
            shutil.rmtree(image_dir, ignore_errors=True)
            os.replace(staging_dir, image_dir)
            os.replace(staging_json, json_path)
    return json_path, image_dir
