"""Drawing helpers of the synthetic generator (`synthetic.py`): backgrounds, shapes, persons.

Conventions used throughout:
- Points are float arrays of shape (N, 2) holding (x, y) in cv2's pixel-centre coordinates: pixel
  (row r, column c) is centred on (x=c, y=r).
- Masks are (H, W) bool arrays at full image resolution; colour layers are (H, W, 3) uint8 RGB.
- Every random draw comes from the `np.random.Generator` passed in, so output is deterministic.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np

# cv2 drawing with sub-pixel precision: coordinates are passed as integers with SHIFT fractional
# bits, so small shapes keep their geometry instead of snapping to whole pixels.
SHIFT = 4
_ONE = 1 << SHIFT

# A shape outline in its local frame (unit radius): polygons painted in order, each either filled
# (True) or erased (False) — erasing draws holes and cuts (ring, crescent).
PolygonOps = List[Tuple[np.ndarray, bool]]

SHAPE_NAMES = ("star", "crescent", "ring", "blob", "cross", "horseshoe")

# Thinnest part a shape may have once drawn, in pixels: anything thinner could pass for the
# 1-2 px background lines, which are clutter and must not look like an annotated class.
MIN_SHAPE_THICKNESS = 3.0


# --------------------------------------------------------------------------- low-level drawing
def fixed_point(points: np.ndarray) -> np.ndarray:
    """(N, 2) float points -> (N, 1, 2) int32 in cv2's fixed-point format (SHIFT bits)."""
    return np.round(np.asarray(points, np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _fx(value: float) -> int:
    """A scalar coordinate or length in cv2's fixed-point format."""
    return int(round(value * _ONE))


def rotation(angle: float) -> np.ndarray:
    """(2, 2) matrix rotating (x, y) by `angle` radians (clockwise on screen, as y points down)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def rasterize(ops: PolygonOps, height: int, width: int) -> np.ndarray:
    """Paint image-space polygon ops into a (height, width) bool mask (no anti-aliasing)."""
    mask = np.zeros((height, width), np.uint8)
    for polygon, fill in ops:
        cv2.fillPoly(mask, [fixed_point(polygon)], 1 if fill else 0, cv2.LINE_8, SHIFT)
    return mask.astype(bool)


def bounding_box(mask: np.ndarray, pad: int = 0) -> Optional[Tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) half-open box of a (H, W) bool mask, padded and clipped; None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (max(rows[0] - pad, 0), min(rows[-1] + 1 + pad, h),
            max(cols[0] - pad, 0), min(cols[-1] + 1 + pad, w))


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random RGB colour, (3,) float64 in [0, 255]."""
    return rng.uniform(0, 255, size=3)


def composite(image: np.ndarray, mask: np.ndarray, layer: np.ndarray) -> None:
    """Paint `layer` over `image` (both (H, W, 3) uint8) where the (H, W) bool `mask` is set.

    The edge is softened *inwards* only (alpha = blurred mask, zero outside the mask), so that
    every pixel the object changes lies on its mask and the binary annotation stays exact.
    """
    box = bounding_box(mask, pad=1)
    if box is None:
        return
    y0, y1, x0, x1 = box
    m = mask[y0:y1, x0:x1].astype(np.float32)
    alpha = (cv2.GaussianBlur(m, (3, 3), 0.7) * m)[..., None]
    region = image[y0:y1, x0:x1].astype(np.float32)
    region += alpha * (layer[y0:y1, x0:x1].astype(np.float32) - region)
    image[y0:y1, x0:x1] = np.clip(np.round(region), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- background
def _low_frequency_noise(rng: np.random.Generator, height: int, width: int, channels: int,
                         cells: int, amplitude: float) -> np.ndarray:
    """Smooth noise, (height, width, channels) float32: a coarse random grid, bicubic-upsampled."""
    grid = rng.normal(0.0, amplitude, size=(cells, cells, channels)).astype(np.float32)
    noise = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return noise.reshape(height, width, channels)


def draw_background(rng: np.random.Generator, height: int, width: int,
                    clutter: float) -> np.ndarray:
    """A textured, cluttered background: (height, width, 3) uint8 RGB.

    A random two-colour gradient, low-frequency colour noise, sometimes faint stripes, then
    unannotated clutter (faint blurred blobs, thin lines, speckles), `clutter` scaling its amount.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = rotation(rng.uniform(0, 2 * np.pi))[0]
    t = (xx * direction[0] + yy * direction[1])
    t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    c0, c1 = random_colour(rng), random_colour(rng)
    image = c0 + t[..., None] * (c1 - c0)
    image += _low_frequency_noise(rng, height, width, 3, int(rng.integers(3, 8)),
                                  rng.uniform(10, 40))
    if rng.random() < 0.4:  # faint stripes: a mid-frequency texture with straight edges
        stripe_dir = rotation(rng.uniform(0, np.pi))[0]
        phase = (xx * stripe_dir[0] + yy * stripe_dir[1]) * 2 * np.pi / rng.uniform(6, 30)
        image += rng.uniform(4, 14) * np.sin(phase)[..., None]
    image = np.clip(image, 0, 255).astype(np.uint8)
    _draw_clutter(rng, image, clutter)
    return image


def _draw_clutter(rng: np.random.Generator, image: np.ndarray, clutter: float) -> None:
    """Draw unannotated distractors in place on `image` ((H, W, 3) uint8).

    Each kind is kept unlike every annotated class: blobs are faint and blurred (objects are
    opaque with sharp edges), lines are 1-2 px thin (objects are >= MIN_SHAPE_THICKNESS), and
    speckles are at most 5 px wide (the smallest object is ~14 px).
    """
    h, w = image.shape[:2]

    def count(low: int, high: int) -> int:
        return int(rng.integers(low, high + 1) * clutter)

    for _ in range(count(2, 6)):  # faint blobs
        blob = np.zeros((h, w), np.uint8)
        centre = (_fx(rng.uniform(0, w)), _fx(rng.uniform(0, h)))
        axes = (_fx(rng.uniform(10, 60)), _fx(rng.uniform(10, 60)))
        cv2.ellipse(blob, centre, axes, rng.uniform(0, 180), 0, 360, 1, -1, cv2.LINE_8, SHIFT)
        sigma = rng.uniform(3, 8)
        alpha = cv2.GaussianBlur(blob.astype(np.float32), (0, 0), sigma) * rng.uniform(0.1, 0.3)
        colour = random_colour(rng).astype(np.float32)
        blended = image + alpha[..., None] * (colour - image)
        image[...] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    for _ in range(count(3, 12)):  # thin lines and polylines
        points = [rng.uniform((0, 0), (w, h))]
        for _ in range(int(rng.integers(1, 4))):
            points.append(points[-1] + rng.normal(0, 60, size=2))
        cv2.polylines(image, [fixed_point(np.array(points))], False,
                      random_colour(rng).tolist(), int(rng.integers(1, 3)), cv2.LINE_AA, SHIFT)
    for _ in range(count(10, 60)):  # speckles
        centre = (_fx(rng.uniform(0, w)), _fx(rng.uniform(0, h)))
        cv2.circle(image, centre, _fx(rng.uniform(0.5, 2.5)), random_colour(rng).tolist(), -1,
                   cv2.LINE_AA, SHIFT)


def add_camera_noise(rng: np.random.Generator, image: np.ndarray,
                     max_noise_sigma: float) -> np.ndarray:
    """Sometimes a slight blur, then Gaussian pixel noise: (H, W, 3) uint8 -> same."""
    out = image.astype(np.float32)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 0.8))
    out += rng.normal(0.0, rng.uniform(0.0, max_noise_sigma), size=out.shape).astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- shapes
def _circle(radius: float, centre=(0.0, 0.0), n: int = 48) -> np.ndarray:
    """(n, 2) points on a circle."""
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a)], axis=1)


def _stadium(half_length: float, half_width: float, n_cap: int = 12) -> np.ndarray:
    """(2 * n_cap, 2) points: a bar along x with round caps (centred on the origin)."""
    a = np.linspace(-np.pi / 2, np.pi / 2, n_cap)
    right = np.stack([half_length + half_width * np.cos(a), half_width * np.sin(a)], axis=1)
    return np.concatenate([right, -right])


def _star(rng: np.random.Generator, thickness: float) -> PolygonOps:
    """5-7 pointed star (concave); `thickness` is the min inner radius in local units."""
    n = int(rng.integers(5, 8))
    inner = max(rng.uniform(0.38, 0.6), thickness)
    angles = np.arange(2 * n) * np.pi / n
    radii = np.where(np.arange(2 * n) % 2 == 0, 1.0, inner) * rng.uniform(0.92, 1.08, 2 * n)
    return [(np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1), True)]


def _crescent(rng: np.random.Generator, thickness: float) -> PolygonOps:
    """A disc with an offset disc cut out: curved, concave, tapering to two horns."""
    offset = rng.uniform(0.35, 0.65)
    # the cut disc must poke out of the outer one (horns) but leave a body >= `thickness`
    cut = rng.uniform(max(1.05 - offset, 0.7), 1.0 + offset - max(thickness, 0.25))
    return [(_circle(1.0), True), (_circle(cut, (offset, 0.0)), False)]


def _ring(rng: np.random.Generator, thickness: float) -> PolygonOps:
    """An annulus with a slightly off-centre hole (always has a hole)."""
    inner = min(rng.uniform(0.45, 0.72), 0.9 - thickness)
    shift = rng.uniform(-1, 1, size=2) * 0.1 * (1.0 - inner)
    return [(_circle(1.0), True), (_circle(inner, shift), False)]


def _blob(rng: np.random.Generator, thickness: float) -> PolygonOps:
    """A smooth random outline: radius(angle) = 1 + a low-order Fourier series (often concave)."""
    a = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    radius = np.ones_like(a)
    for k in range(2, 6):
        radius += rng.uniform(-1, 1) * 0.32 / k ** 0.8 * np.cos(k * a + rng.uniform(0, 2 * np.pi))
    radius = np.maximum(radius / radius.max(), max(0.3, thickness))
    return [(np.stack([radius * np.cos(a), radius * np.sin(a)], axis=1), True)]


def _cross(rng: np.random.Generator, thickness: float) -> PolygonOps:
    """A plus / Latin cross of two round-ended bars; the crossing point may be off-centre."""
    half_width = max(rng.uniform(0.2, 0.36), thickness / 2)
    bar = _stadium(1.0 - half_width, half_width)
    upright = _stadium(rng.uniform(0.7, 1.0) - half_width, half_width)[:, ::-1]
    upright[:, 0] += rng.uniform(-0.3, 0.3)
    return [(bar, True), (upright, True)]


def _horseshoe(rng: np.random.Generator, thickness: float) -> PolygonOps:
    """A thick circular arc (200-290 degrees) with round ends: a deep concavity, no hole."""
    width = max(rng.uniform(0.28, 0.5), thickness)
    mid = 1.0 - width / 2
    span = np.deg2rad(rng.uniform(200, 290))
    start, end = -span / 2, span / 2
    arc = np.linspace(start, end, 40)
    outer = np.stack([np.cos(arc), np.sin(arc)], axis=1)

    def cap(angle: float, tangent_sign: float) -> np.ndarray:
        # half circle around the arc end, from its outer to its inner edge, bulging along the arc
        radial = np.array([np.cos(angle), np.sin(angle)])
        tangent = tangent_sign * np.array([-np.sin(angle), np.cos(angle)])
        psi = np.linspace(0, np.pi, 10)[:, None]
        return mid * radial + width / 2 * (np.cos(psi) * radial + np.sin(psi) * tangent)

    inner = (1.0 - width) * outer[::-1]
    polygon = np.concatenate([outer, cap(end, 1.0), inner, cap(start, -1.0)[::-1]])
    return [(polygon, True)]


_SHAPE_MAKERS: Dict[str, Callable[[np.random.Generator, float], PolygonOps]] = {
    "star": _star, "crescent": _crescent, "ring": _ring,
    "blob": _blob, "cross": _cross, "horseshoe": _horseshoe,
}
# Where an occasional extra hole fits inside each shape (local frame), as (centre, max radius);
# absent: the shape gets none (a ring has one already; a crescent/horseshoe is too thin).
_HOLE_SITES = {"star": ((0.0, 0.0), 0.22), "blob": ((0.0, 0.0), 0.2), "cross": ((0.0, 0.0), 0.15)}


def shape_polygons(rng: np.random.Generator, name: str, size: float, centre: np.ndarray,
                   extra_hole_prob: float) -> PolygonOps:
    """Image-space polygon ops of one random shape of class `name`.

    `size` is the shape's largest extent in pixels; it gets a random rotation and an
    anisotropic scale (aspect 0.6-1.6), and with probability `extra_hole_prob` a hole.
    """
    aspect = np.sqrt(rng.uniform(0.6, 1.6))
    radius = size / 2 / max(aspect, 1 / aspect)
    scale = np.array([radius * aspect, radius / aspect])
    # thinnest allowed feature in the local unit frame (limited by the shorter scale axis)
    thickness = min(MIN_SHAPE_THICKNESS / scale.min(), 0.5)
    ops = _SHAPE_MAKERS[name](rng, thickness)
    if name in _HOLE_SITES and rng.random() < extra_hole_prob:
        (hx, hy), max_r = _HOLE_SITES[name]
        if max_r * scale.min() >= 2.0:  # a hole narrower than ~4 px would be a speck
            r = rng.uniform(max(0.5 * max_r, 2.0 / scale.min()), max_r)
            ops.append((_circle(r, (hx, hy), 24), False))
    transform = rotation(rng.uniform(0, 2 * np.pi)) * scale  # scale local axes, then rotate
    return [(polygon @ transform.T + centre, fill) for polygon, fill in ops]


def textured_layer(rng: np.random.Generator, colour: np.ndarray, mask: np.ndarray,
                   amplitude: float) -> np.ndarray:
    """Colour layer of one shape: (H, W, 3) uint8, zero outside the bbox of the (H, W) mask.

    The base `colour` ((3,) float) is modulated by a zero-mean brightness texture of at most
    +-`amplitude`: flat, a linear shading, stripes, or smooth noise (same odds for all classes,
    so texture says nothing about the class).
    """
    layer = np.zeros(mask.shape + (3,), np.uint8)
    box = bounding_box(mask)
    if box is None:
        return layer
    y0, y1, x0, x1 = box
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    kind = rng.choice(4, p=[0.35, 0.3, 0.15, 0.2])
    direction = rotation(rng.uniform(0, 2 * np.pi))[0]
    proj = xx * direction[0] + yy * direction[1]
    if kind == 0:
        texture = np.zeros_like(xx)
    elif kind == 1:  # linear shading across the object
        texture = (proj - proj.min()) / max(float(np.ptp(proj)), 1.0) * 2.0 - 1.0
    elif kind == 2:  # stripes
        texture = np.sin(proj * 2 * np.pi / rng.uniform(4, 16) + rng.uniform(0, 2 * np.pi))
    else:  # smooth noise
        cells = int(rng.integers(2, 6))
        texture = np.clip(_low_frequency_noise(rng, y1 - y0, x1 - x0, 1, cells, 0.6)[..., 0],
                          -1.0, 1.0)
    pixels = colour + amplitude * rng.uniform(0.5, 1.0) * texture[..., None]
    layer[y0:y1, x0:x1] = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    return layer


# --------------------------------------------------------------------------- persons
# Body proportions in head-height units `u` (figure height = FIGURE_HEIGHT_UNITS * u), in the
# figure's frame: pelvis at the origin, y pointing down, x to the image right.
FIGURE_HEIGHT_UNITS = 7.8
_NECK_Y = -2.7
_HEAD_ABOVE_NECK = 0.75
_HEAD_RADII = (0.5, 0.58)
_SHOULDER_X, _SHOULDER_Y = 0.85, -2.5
_HIP_X, _HIP_Y = 0.48, -0.05
_UPPER_ARM, _LOWER_ARM = 1.45, 1.25
_THIGH, _SHIN = 1.9, 1.85
_MIDDLE_Y = -0.14  # halfway between the top of the head and the ankles of a standing figure

_SKIN_TONES = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 125], [198, 134, 90],
                        [141, 85, 54], [92, 58, 40]], np.float64)


@dataclass
class PersonDrawing:
    """A rendered person.

    mask: (H, W) bool full silhouette; layer: (H, W, 3) uint8 its colours (0 elsewhere);
    joints: COCO keypoint name -> (2,) float image xy, for the labeled keypoints only (a figure
    seen from behind has no nose/eyes); palette: (K, 3) uint8 its main flat colours.
    """
    mask: np.ndarray
    layer: np.ndarray
    joints: Dict[str, np.ndarray]
    palette: np.ndarray


def _direction(angle: float, side: int) -> np.ndarray:
    """Unit vector `angle` radians away from straight down, turned outwards on `side` (+1/-1)."""
    return np.array([side * np.sin(angle), np.cos(angle)])


class _Canvas:
    """Draws coloured parts into a person's colour layer and silhouette mask at once."""

    def __init__(self, height: int, width: int, to_image: Callable[[np.ndarray], np.ndarray],
                 unit: float):
        self.layer = np.zeros((height, width, 3), np.uint8)
        self.mask = np.zeros((height, width), np.uint8)
        self.to_image = to_image  # figure frame (in units u) -> image points
        self.unit = unit

    def _both(self, draw: Callable[[np.ndarray, object], None], colour: np.ndarray) -> None:
        draw(self.layer, tuple(float(c) for c in colour))
        draw(self.mask, 1)

    def limb(self, a: np.ndarray, b: np.ndarray, thickness: float, colour: np.ndarray) -> None:
        """A thick segment with round ends from a to b (figure frame), thickness in units u."""
        pa, pb = self.to_image(np.array([a, b]))
        px = max(int(round(thickness * self.unit)), 2)
        self._both(lambda img, c: cv2.line(img, (_fx(pa[0]), _fx(pa[1])),
                                           (_fx(pb[0]), _fx(pb[1])), c, px, cv2.LINE_8, SHIFT),
                   colour)

    def polygon(self, points: np.ndarray, colour: np.ndarray) -> None:
        pts = fixed_point(self.to_image(np.asarray(points, np.float64)))
        self._both(lambda img, c: cv2.fillPoly(img, [pts], c, cv2.LINE_8, SHIFT), colour)

    def ellipse(self, centre: np.ndarray, radii: Tuple[float, float], angle_deg: float,
                colour: np.ndarray) -> None:
        """A filled ellipse; radii in units u, angle = rotation of the figure frame."""
        c = self.to_image(np.asarray(centre, np.float64)[None])[0]
        axes = (_fx(max(radii[0] * self.unit, 0.6)), _fx(max(radii[1] * self.unit, 0.6)))
        self._both(lambda img, col: cv2.ellipse(img, (_fx(c[0]), _fx(c[1])), axes, angle_deg,
                                                0, 360, col, -1, cv2.LINE_8, SHIFT), colour)


def draw_person(rng: np.random.Generator, height: int, width: int, figure_height: float,
                centre: np.ndarray, facing_front: bool) -> PersonDrawing:
    """Draw a stick-and-blob person with a random pose and clothes, and its 17 COCO keypoints.

    `figure_height` (px) is the head-to-ankle height when standing, `centre` its (x, y) middle.
    Front-facing figures show a face, and their LEFT limbs are on the IMAGE RIGHT, as in COCO;
    from behind, the head is all hair, left is on the image left and nose/eyes are unlabeled.
    """
    unit = figure_height / FIGURE_HEIGHT_UNITS
    # mostly upright; sometimes leaning far (never past 60 deg, so the eyes stay left/right)
    tilt = rng.normal(0.0, 0.12) if rng.random() < 0.9 else rng.uniform(-1.0, 1.0)
    tilt = float(np.clip(tilt, -1.0, 1.0))
    to_world = rotation(tilt)
    origin = np.asarray(centre, np.float64) - to_world @ np.array([0.0, _MIDDLE_Y * unit])

    def to_image(points: np.ndarray) -> np.ndarray:
        return points * unit @ to_world.T + origin

    build = rng.uniform(0.8, 1.25)
    skin = np.clip(_SKIN_TONES[rng.integers(len(_SKIN_TONES))] + rng.normal(0, 8, 3), 0, 255)
    hair = skin if rng.random() < 0.1 else random_colour(rng) * rng.uniform(0.2, 1.0)
    shirt, pants, shoes = random_colour(rng), random_colour(rng), random_colour(rng) * 0.5
    long_sleeves, shorts = rng.random() < 0.5, rng.random() < 0.3

    canvas = _Canvas(height, width, to_image, unit)
    joints: Dict[str, np.ndarray] = {}
    # side +1 is the image right: the person's left when seen from the front
    side_names = {1: "left", -1: "right"} if facing_front else {1: "right", -1: "left"}

    for side, name in side_names.items():  # legs first: the torso covers the hip joints
        hip = np.array([side * _HIP_X * build, _HIP_Y])
        thigh_angle = rng.uniform(-0.25, 0.8)
        knee = hip + _THIGH * _direction(thigh_angle, side)
        shin_angle = thigh_angle + rng.uniform(-1.0, 1.0) * rng.uniform(0, 1.2)
        ankle = knee + _SHIN * _direction(shin_angle, side)
        canvas.limb(hip, knee, 0.62, pants)
        canvas.limb(knee, ankle, 0.5, skin if shorts else pants)
        canvas.ellipse(ankle + np.array([0.0, 0.12]), (0.28, 0.2), np.rad2deg(tilt), shoes)
        joints.update({f"{name}_hip": hip, f"{name}_knee": knee, f"{name}_ankle": ankle})

    torso = np.array([[-0.95, -2.7], [0.95, -2.7], [0.72, -1.2], [0.8, 0.25], [-0.8, 0.25],
                      [-0.72, -1.2]]) * [build, 1.0]
    canvas.polygon(torso, shirt)
    canvas.polygon(np.array([[-0.76, -0.3], [0.76, -0.3], [0.8, 0.25], [-0.8, 0.25]]) * [build, 1],
                   pants)  # waistband

    head_roll = tilt + rng.normal(0.0, 0.15)
    head_roll = float(np.clip(head_roll, -1.0, 1.0)) - tilt  # relative to the figure frame
    head_frame = rotation(head_roll)
    head = np.array([0.0, _NECK_Y]) + head_frame @ np.array([0.0, -_HEAD_ABOVE_NECK])
    canvas.limb(np.array([0.0, _NECK_Y + 0.2]), head, 0.36, skin)  # neck
    head_deg = np.rad2deg(tilt + head_roll)
    if facing_front:
        canvas.ellipse(head + head_frame @ [0.0, -0.08], (0.52, 0.56), head_deg, hair)
        canvas.ellipse(head + head_frame @ [0.0, 0.07], (0.44, 0.5), head_deg, skin)
        yaw = rng.uniform(-0.1, 0.1)  # the face turned a little sideways
        eye_r = max(0.075, 0.7 / unit)  # at least ~1 px so the eyes show on small figures
        face = {"nose": (yaw * 1.3, 0.12), "left_eye": (yaw + 0.17, -0.06),
                "right_eye": (yaw - 0.17, -0.06)}
        for key, (fx, fy) in face.items():
            joints[key] = head + head_frame @ np.array([fx, fy])
        for key in ("left_eye", "right_eye"):
            canvas.ellipse(joints[key], (eye_r, eye_r), head_deg, np.full(3, 30.0))
        canvas.ellipse(joints["nose"], (eye_r * 0.8, eye_r), head_deg, skin * 0.75)
        canvas.limb(head + head_frame @ [yaw * 1.3 - 0.1, 0.3],
                    head + head_frame @ [yaw * 1.3 + 0.1, 0.3], 0.06, np.array([150, 40, 40.0]))
    else:
        canvas.ellipse(head, _HEAD_RADII, head_deg, hair)
    for side, name in side_names.items():
        joints[f"{name}_ear"] = head + head_frame @ np.array([side * 0.45, 0.02])

    for side, name in side_names.items():  # arms last: they may swing in front of the torso
        shoulder = np.array([side * _SHOULDER_X * build, _SHOULDER_Y])
        arm_angle = rng.uniform(-0.3, 2.9)
        elbow = shoulder + _UPPER_ARM * _direction(arm_angle, side)
        forearm_angle = arm_angle + rng.uniform(-0.4, 2.4) * rng.choice([-1, 1])
        wrist = elbow + _LOWER_ARM * _direction(forearm_angle, side)
        canvas.limb(shoulder, elbow, 0.44, shirt)
        canvas.limb(elbow, wrist, 0.38, shirt if long_sleeves else skin)
        canvas.limb(wrist, wrist + 0.15 * _direction(forearm_angle, side), 0.42, skin)  # hand
        joints.update({f"{name}_shoulder": shoulder, f"{name}_elbow": elbow,
                       f"{name}_wrist": wrist})

    palette = np.array([skin, hair, shirt, pants, shoes]).round().astype(np.uint8)
    image_joints = {key: to_image(point[None])[0] for key, point in joints.items()}
    return PersonDrawing(canvas.mask.astype(bool), canvas.layer, image_joints, palette)
