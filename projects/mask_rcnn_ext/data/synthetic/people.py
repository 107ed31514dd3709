"""People: a stick figure in a T-shirt and shorts carrying the 17 COCO person keypoints."""

import math

import cv2
import numpy as np
from detectron2.data.datasets.builtin_meta import COCO_PERSON_KEYPOINT_NAMES

from .shapes import crop_canvas
from .textures import TEXTURE_NOISE, object_texture, palette_colour

NUM_KEYPOINTS = len(COCO_PERSON_KEYPOINT_NAMES)
KEYPOINT_INDEX = {name: i for i, name in enumerate(COCO_PERSON_KEYPOINT_NAMES)}


def _person_keypoints(rng: np.random.Generator, height: float, facing_camera: bool) -> np.ndarray:
    """(17, 2) keypoint positions in a frame with the feet at y=0 and the body centred on x=0."""
    k = np.zeros((NUM_KEYPOINTS, 2))
    head_r = 0.07 * height
    # Viewed from the front the person's left is on the image's right.
    side = 1.0 if facing_camera else -1.0
    head = np.array([0.0, -height + head_r])
    k[KEYPOINT_INDEX["nose"]] = head + (0, 0.25 * head_r)
    k[KEYPOINT_INDEX["left_eye"]] = head + (side * 0.4 * head_r, -0.2 * head_r)
    k[KEYPOINT_INDEX["right_eye"]] = head + (-side * 0.4 * head_r, -0.2 * head_r)
    k[KEYPOINT_INDEX["left_ear"]] = head + (side * 0.85 * head_r, 0)
    k[KEYPOINT_INDEX["right_ear"]] = head + (-side * 0.85 * head_r, 0)
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
            k[KEYPOINT_INDEX[f"{name}_{joint}"]] = point
    k[:, 1] -= k[:, 1].max()  # the lowest ankle stands on y=0
    return k


def draw_person(rng, h: int, w: int, pad: int, height: float, facing_camera: bool, angle: float, foot):
    """Draw a stick figure standing on `foot` (image pixels).

    Returns the (h, w) bool mask inside the image, the whole figure's area (see `crop_canvas`), its
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
    skin, hair, trousers, shoes = palette_colour(rng), palette_colour(rng), palette_colour(rng), palette_colour(rng)
    kp = {name: tuple(int(v) for v in on_canvas[i]) for name, i in KEYPOINT_INDEX.items()}
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
    labels, whole_area = crop_canvas(canvas, pad, h, w)
    texture, palette = object_texture(rng, h, w)  # the shirt's
    colours = {1: skin if facing_camera else hair, 3: trousers, 4: np.array((20, 20, 20)), 5: skin, 6: shoes}
    noise = rng.integers(-TEXTURE_NOISE, TEXTURE_NOISE + 1, size=(h, w, 3), dtype=np.int16)
    for label, colour in colours.items():
        texture[labels == label] = (colour + noise[labels == label]).clip(0, 255).astype(np.uint8)
        palette.append(tuple(int(v) for v in colour))
    return labels > 0, whole_area, texture, palette, keypoints
