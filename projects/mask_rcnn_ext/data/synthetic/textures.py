"""Textures: palette colours, two-colour patterns with noise, and cluttered backgrounds."""

import math

import cv2
import numpy as np

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


def palette_colour(rng: np.random.Generator) -> np.ndarray:
    """(3,) int16 RGB: a colour of the palette, drawn uniformly."""
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
    first = palette_colour(rng)
    kind = rng.choice(["flat", "stripes", "checks", "blotches"], p=[0.5, 0.5 / 3, 0.5 / 3, 0.5 / 3])
    if kind == "flat":
        base = np.broadcast_to(first, (h, w, 3)).copy()
        palette = [first]
    else:
        second = palette_colour(rng)
        while np.array_equal(second, first):
            second = palette_colour(rng)
        base = np.where(_pattern_mask(rng, h, w, kind, int(rng.integers(4, 12)))[..., None], second, first)
        palette = [first, second]
    noise = rng.integers(-TEXTURE_NOISE, TEXTURE_NOISE + 1, size=(h, w, 3), dtype=np.int16)
    texture = (base + noise).clip(0, 255).astype(np.uint8)
    return texture, [tuple(int(c) for c in p) for p in palette]


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) uint8: a large-scale pattern, shading, noise and unannotated clutter."""
    first, second = palette_colour(rng), palette_colour(rng)
    kind = rng.choice(["stripes", "checks", "blotches"])
    pattern = _pattern_mask(rng, h, w, kind, int(rng.integers(8, 40)))
    image = np.where(pattern[..., None], second, first).astype(np.float32)
    # Mute the pattern towards grey so objects usually (not always) stand out from it.
    image = 0.25 * image + 0.75 * 128
    image *= (0.6 + 0.8 * _smooth_noise(rng, h, w, 48))[..., None]
    image += rng.normal(0, 6, size=image.shape)
    image = image.clip(0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(2, 9))):
        colour = tuple(int(c) for c in palette_colour(rng))
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
