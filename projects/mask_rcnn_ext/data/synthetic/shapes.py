"""Shapes: lists of (polygon in a unit frame centred on 0, value) painted in order, value 1 adds
to the shape and 0 cuts it out; rasterized onto a canvas padded around the image."""

import math

import cv2
import numpy as np


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


def shape_parts(rng: np.random.Generator, shape: str) -> list[tuple[np.ndarray, int]]:
    """A random instance of `shape` (a name of SHAPE_CLASSES): its (polygon (P, 2), value) parts."""
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


def crop_canvas(canvas: np.ndarray, pad: int, h: int, w: int) -> tuple[np.ndarray, int]:
    """The image part of a canvas drawn with `pad` pixels around the image, and the pixel count of
    everything drawn, in the image or not (what visibility fractions are measured against)."""
    return canvas[pad : pad + h, pad : pad + w], int(np.count_nonzero(canvas))


def rasterize(parts, h: int, w: int, pad: int, size: float, angle: float, aspect: float, centre):
    """`parts` scaled to diameter `size`, stretched, rotated and placed at `centre` (image pixels).

    Returns the (h, w) bool mask inside the image and the whole shape's area (see `crop_canvas`)."""
    c, s = math.cos(angle), math.sin(angle)
    transform = np.array([[c, -s], [s, c]]) @ np.diag([aspect, 1.0 / aspect]) * (size / 2)
    canvas = np.zeros((h + 2 * pad, w + 2 * pad), np.uint8)
    for polygon, value in parts:
        pixels = polygon @ transform.T + np.asarray(centre) + pad
        cv2.fillPoly(canvas, [np.round(pixels * 16).astype(np.int32)], value, shift=4)
    mask, whole_area = crop_canvas(canvas, pad, h, w)
    return mask.astype(bool), whole_area
