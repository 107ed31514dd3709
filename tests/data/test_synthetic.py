"""The synthetic generator: deterministic, and its annotations agree with its pixels."""

import collections
import json
import os

import cv2
import numpy as np
import pytest
from detectron2.data.datasets.builtin_meta import COCO_PERSON_KEYPOINT_FLIP_MAP, COCO_PERSON_KEYPOINT_NAMES
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from mask_rcnn_ext.data.synthetic import (
    PERSON_CLASS,
    SHAPE_CLASSES,
    TEXTURE_NOISE,
    THING_CLASSES,
    SyntheticSpec,
    coco_annotations,
    ensure_coco_split,
    render_sample,
    write_coco_split,
)

SPEC = SyntheticSpec(num_images=24, seed=7)
KP = {name: i for i, name in enumerate(COCO_PERSON_KEYPOINT_NAMES)}


@pytest.fixture(scope="module")
def samples():
    return [render_sample(SPEC, i) for i in range(SPEC.num_images)]


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic"))
    return ensure_coco_split(SPEC, root, "tiny")


def test_rendering_is_deterministic(samples):
    image, instances = render_sample(SPEC, 3)
    assert np.array_equal(image, samples[3][0])
    assert [i["category"] for i in instances] == [i["category"] for i in samples[3][1]]
    other, _ = render_sample(SyntheticSpec(num_images=24, seed=8), 3)
    assert image.shape != other.shape or not np.array_equal(image, other)


def test_a_split_written_by_one_process_equals_one_written_by_three(tmp_path):
    """The files do not depend on how many processes render them; annotation ids run in image order."""
    for n in (1, 3):
        write_coco_split(SPEC, str(tmp_path / f"images{n}"), str(tmp_path / f"{n}.json"), num_workers=n)
    assert (tmp_path / "1.json").read_bytes() == (tmp_path / "3.json").read_bytes()
    names = sorted(os.listdir(tmp_path / "images1"))
    assert names == sorted(os.listdir(tmp_path / "images3")) and len(names) == SPEC.num_images
    for name in names:
        assert (tmp_path / "images1" / name).read_bytes() == (tmp_path / "images3" / name).read_bytes(), name
    ids = [annotation["id"] for annotation in json.loads((tmp_path / "3.json").read_text())["annotations"]]
    assert ids == list(range(1, len(ids) + 1))


def _palette_fraction(image, mask, palette):
    """Fraction of the pixels in `mask` within TEXTURE_NOISE of one of the palette colours."""
    pixels = image[mask].astype(int)
    distance = np.min([np.abs(pixels - np.array(c)).max(axis=1) for c in palette], axis=0)
    return float((distance <= TEXTURE_NOISE).mean())


def test_mask_pixels_carry_their_instance_colours(samples):
    shifted_fractions = []
    for image, instances in samples:
        for inst in instances:
            mask = inst["visible_mask"]
            assert _palette_fraction(image, mask, inst["palette"]) == 1.0
            # Negative control: the same mask moved off the object mostly lands on other colours,
            # so the check above would catch masks that drift from their pixels.
            shifted = np.roll(mask, (9, 9), axis=(0, 1)) & ~mask
            if shifted.sum() >= 20:
                shifted_fractions.append(_palette_fraction(image, shifted, inst["palette"]))
    assert len(shifted_fractions) > 50
    assert np.mean(shifted_fractions) < 0.3


def test_visible_masks_do_not_overlap(samples):
    for _image, instances in samples:
        coverage = np.sum([inst["visible_mask"] for inst in instances], axis=0)
        assert coverage.max() <= 1


def test_annotations_decode_to_the_visible_masks(samples, split):
    json_path, _ = split
    coco = COCO(json_path)
    kinds = collections.Counter()
    for index, (_image, instances) in enumerate(samples):
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[index + 1]))
        assert len(annotations) == len(instances)
        for ann, inst in zip(annotations, instances):
            kinds["polygon" if isinstance(ann["segmentation"], list) else "rle"] += 1
            mask = coco.annToMask(ann).astype(bool)
            assert np.array_equal(mask, inst["visible_mask"]), ann["id"]
            ys, xs = np.nonzero(mask)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert ann["area"] == mask.sum()
            assert THING_CLASSES[ann["category_id"] - 1] == inst["category"]
    assert kinds["polygon"] > 20 and kinds["rle"] > 20, kinds


def test_rings_have_holes_in_their_masks(samples):
    holes = 0
    for _, instances in samples:
        for inst in instances:
            if inst["category"] == "ring":
                _, hierarchy = cv2.findContours(
                    inst["visible_mask"].astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE
                )
                holes += int((hierarchy[0][:, 3] >= 0).any())
    assert holes >= 3


def test_person_keypoints_follow_coco_conventions(samples):
    people = [(image, inst) for image, instances in samples for inst in instances if inst["category"] == PERSON_CLASS]
    assert len(people) >= 10
    facing_back = 0
    visibility = collections.Counter()
    for image, inst in people:
        kp = inst["keypoints"]
        h, w = image.shape[:2]
        for x, y, v in kp:
            visibility[int(v)] += 1
            if v == 0:
                assert x == 0 and y == 0
            else:
                assert 0 <= x < w and 0 <= y < h
                # v=2 exactly where the keypoint's pixel shows this person
                assert (v == 2) == bool(inst["visible_mask"][int(y), int(x)])
        left, right = kp[KP["left_shoulder"]], kp[KP["right_shoulder"]]
        if left[2] and right[2]:
            # Seen from the front, the person's left shoulder is on the image's right.
            assert (left[0] > right[0]) == inst["facing_camera"]
        if not inst["facing_camera"]:
            facing_back += 1
            assert not kp[[KP["nose"], KP["left_eye"], KP["right_eye"]], 2].any()
    assert 0 < facing_back < len(people) / 2
    assert min(visibility[0], visibility[1], visibility[2]) > 0, visibility


def test_non_person_annotations_carry_empty_keypoints(samples):
    for _, instances in samples:
        for ann in coco_annotations(instances, image_id=1, first_id=1):
            if ann["category_id"] != 1:
                assert ann["keypoints"] == [0] * 51 and ann["num_keypoints"] == 0
            else:
                assert ann["num_keypoints"] == sum(v > 0 for v in ann["keypoints"][2::3])


def test_every_class_appears_and_none_dominates():
    counts = collections.Counter(
        inst["category"] for i in range(60) for inst in render_sample(SyntheticSpec(num_images=60, seed=1), i)[1]
    )
    assert set(counts) == set(THING_CLASSES)
    shape_counts = [counts[c] for c in SHAPE_CLASSES]
    assert max(shape_counts) < 2 * min(shape_counts), counts


def test_categories_describe_coco_person_keypoints(split):
    with open(split[0]) as f:
        categories = json.load(f)["categories"]
    person = categories[0]
    assert person["name"] == PERSON_CLASS and person["keypoints"] == list(COCO_PERSON_KEYPOINT_NAMES)
    assert len(person["skeleton"]) == 19
    assert [c["name"] for c in categories] == list(THING_CLASSES)
    assert all(name in COCO_PERSON_KEYPOINT_NAMES for pair in COCO_PERSON_KEYPOINT_FLIP_MAP for name in pair)


def test_ensure_reuses_a_matching_split_and_regenerates_a_changed_one(split, tmp_path):
    root = str(tmp_path)
    small = SyntheticSpec(num_images=3, seed=7)
    json_path, image_dir = ensure_coco_split(small, root, "s")
    mtime = os.path.getmtime(json_path)
    assert ensure_coco_split(small, root, "s") == (json_path, image_dir)
    assert os.path.getmtime(json_path) == mtime  # reused, not rewritten
    assert sorted(os.listdir(image_dir)) == ["000000.png", "000001.png", "000002.png"]

    ensure_coco_split(SyntheticSpec(num_images=2, seed=7), root, "s")
    assert sorted(os.listdir(image_dir)) == ["000000.png", "000001.png"]
    with open(json_path) as f:
        assert len(json.load(f)["images"]) == 2
    # The written PNG is the rendered image.
    assert np.array_equal(cv2.imread(os.path.join(image_dir, "000001.png"))[:, :, ::-1], render_sample(small, 1)[0])


def test_rle_segmentation_is_compressed_text(split):
    with open(split[0]) as f:
        annotations = json.load(f)["annotations"]
    rle = next(a["segmentation"] for a in annotations if isinstance(a["segmentation"], dict))
    assert isinstance(rle["counts"], str)
    assert mask_util.area(dict(rle, counts=rle["counts"].encode())) > 0
