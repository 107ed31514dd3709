"""register_coco_keypoints: any keypoint set from a COCO json, checked at registration, flipped right."""

import json

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, DatasetMapper, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.data.detection_utils import create_keypoint_hflip_indices

from mask_rcnn_ext.data import DEFAULT_OKS_SIGMA, register_coco_keypoints
from mask_rcnn_ext.data.coco_keypoints import COCO_PERSON_OKS_SIGMAS

NAMES = ["head", "left_fin", "right_fin", "back", "tail"]
SKELETON = [[1, 4], [4, 5], [2, 4], [3, 4]]
WIDTH, HEIGHT = 40, 32  # not square, so a flip about the wrong axis shows
SIGMAS = [0.05] * len(NAMES)


def coco_json(**fish) -> dict:
    """3 images, each with one 'fish' carrying 5 labelled keypoints; 'rock' (id 3) has no keypoints."""
    images, annotations = [], []
    for i in range(3):
        keypoints = [v for k in range(len(NAMES)) for v in (3 + 7 * k + i, 4 + 5 * k, 2)]
        images.append(dict(id=i + 1, file_name=f"{i}.png", width=WIDTH, height=HEIGHT))
        annotations.append(
            dict(
                id=10 + i,
                image_id=i + 1,
                category_id=1,
                bbox=[2, 2, 34, 26],
                area=884,
                iscrowd=0,
                num_keypoints=len(NAMES),
                keypoints=keypoints,
            )
        )
    categories = [{"id": 1, "name": "fish", "keypoints": NAMES, "skeleton": SKELETON, **fish}, dict(id=3, name="rock")]
    return dict(images=images, annotations=annotations, categories=categories)


def write(tmp_path, coco) -> str:
    for image in coco["images"]:
        cv2.imwrite(str(tmp_path / image["file_name"]), np.full((HEIGHT, WIDTH, 3), 80, np.uint8))
    path = tmp_path / "fish.json"
    path.write_text(json.dumps(coco))
    return str(path)


@pytest.fixture
def name(request):
    """A dataset name of this test's own, removed from detectron2's catalogs afterwards."""
    name = f"test_fish_{request.node.name}"
    yield name
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
    if name in MetadataCatalog.list():
        MetadataCatalog.remove(name)


def test_registration_reads_names_skeleton_and_classes(tmp_path, name):
    json_file = write(tmp_path, coco_json())
    register_coco_keypoints(name, json_file, str(tmp_path), keypoint_oks_sigmas=SIGMAS)
    meta = MetadataCatalog.get(name)
    assert meta.keypoint_names == NAMES
    assert meta.keypoint_flip_map == []
    assert meta.keypoint_oks_sigmas == SIGMAS
    assert meta.thing_classes == ["fish", "rock"]
    assert meta.thing_dataset_id_to_contiguous_id == {1: 0, 3: 1}
    assert (meta.evaluator_type, meta.json_file, meta.image_root) == ("coco", json_file, str(tmp_path))
    rules = meta.keypoint_connection_rules
    assert [(a, b) for a, b, _ in rules] == [
        ("head", "back"),
        ("back", "tail"),
        ("left_fin", "back"),
        ("right_fin", "back"),
    ]
    colours = [colour for _, _, colour in rules]
    assert len(set(colours)) == len(colours)
    assert all(len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in colours)


def test_without_sigmas_the_uniform_default_is_used_with_a_warning(tmp_path, name):
    with pytest.warns(
        UserWarning, match=f"'{name}'.* has no keypoint_oks_sigmas; .*sigma {DEFAULT_OKS_SIGMA} for each of its 5"
    ):
        register_coco_keypoints(name, write(tmp_path, coco_json()), str(tmp_path))
    assert MetadataCatalog.get(name).keypoint_oks_sigmas == [DEFAULT_OKS_SIGMA] * 5
    assert DEFAULT_OKS_SIGMA == round(float(np.mean(COCO_PERSON_OKS_SIGMAS)), 3)  # as its comment says


def _drop_keypoints_of_annotation_11(coco):
    del coco["annotations"][1]["keypoints"]


@pytest.mark.parametrize(
    "edit, kwargs, message",
    [
        pytest.param(
            None, dict(keypoint_oks_sigmas=[0.05] * 4), r"4 keypoint_oks_sigmas for 5 keypoint_names", id="sigma_count"
        ),
        pytest.param(
            None,
            dict(keypoint_oks_sigmas=[0.05, 0.05, 0.0, 0.05, -1]),
            r"keypoint_oks_sigmas must be positive, got \[0.05, 0.05, 0.0",
            id="sigma_sign",
        ),
        pytest.param(
            None,
            dict(keypoint_flip_map=[("left_fin", "right_wing")]),
            r"keypoint_flip_map names unknown keypoints \['right_wing'\]",
            id="flip_unknown",
        ),
        pytest.param(
            None,
            dict(keypoint_flip_map=[("left_fin", "right_fin"), ("tail", "left_fin")]),
            r"keypoint_flip_map puts 'left_fin' in 2 pairs",
            id="flip_twice",
        ),
        pytest.param(
            None,
            dict(keypoint_flip_map=[("tail", "tail")]),
            r"keypoint_flip_map pairs 'tail' with itself",
            id="flip_self",
        ),
        pytest.param(
            dict(skeleton=[[1, 4], [1, 6], [0, 2]]),
            {},
            r"skeleton edges \[\[1, 6\], \[0, 2\]\] are not pairs of keypoint indices in 1..5",
            id="skeleton",
        ),
        pytest.param(dict(keypoints=NAMES[:4] + ["head"]), {}, r"keypoint_names repeats \['head'\]", id="names_repeat"),
        pytest.param(
            _drop_keypoints_of_annotation_11,
            {},
            r"1 annotations \(ids \[11\]\) lack the 15 keypoint values",
            id="annotation_lacks_keypoints",
        ),
        pytest.param(dict(keypoints=[]), {}, r"no category has 'keypoints'", id="no_keypoint_category"),
        pytest.param(
            lambda coco: coco["categories"][1].update(keypoints=["a", "b"]),
            {},
            r"categories name different keypoints \('fish': \['head', .*'rock': \['a', 'b'\]\)",
            id="two_sets",
        ),
    ],
)
def test_bad_keypoint_sets_are_refused_naming_the_json(tmp_path, name, edit, kwargs, message):
    coco = coco_json(**edit) if isinstance(edit, dict) else coco_json()
    if callable(edit):
        edit(coco)
    json_file = write(tmp_path, coco)
    with pytest.raises(ValueError, match=message) as refusal:
        register_coco_keypoints(name, json_file, str(tmp_path), **{"keypoint_oks_sigmas": SIGMAS, **kwargs})
    assert json_file in str(refusal.value)
    assert name not in DatasetCatalog.list()


def test_a_file_that_is_not_json_is_named(tmp_path, name):
    (tmp_path / "broken.json").write_text("{'categories': ")
    with pytest.raises(ValueError, match=f"{tmp_path / 'broken.json'} is not valid JSON"):
        register_coco_keypoints(name, str(tmp_path / "broken.json"), str(tmp_path), keypoint_oks_sigmas=SIGMAS)


def test_records_carry_3k_keypoint_values(tmp_path, name):
    coco = coco_json()
    register_coco_keypoints(name, write(tmp_path, coco), str(tmp_path), keypoint_oks_sigmas=SIGMAS)
    records = DatasetCatalog.get(name)
    assert [r["file_name"] for r in records] == [str(tmp_path / f"{i}.png") for i in range(3)]
    for record, annotation in zip(records, coco["annotations"]):
        (obj,) = record["annotations"]
        assert obj["category_id"] == 0 and len(obj["keypoints"]) == 3 * len(NAMES)
        # load_coco_json reads integer pixel indices and moves them to pixel centres (+0.5).
        expected = np.array(annotation["keypoints"], float).reshape(-1, 3) + [0.5, 0.5, 0]
        assert np.array_equal(np.array(obj["keypoints"]).reshape(-1, 3), expected)


@pytest.mark.parametrize(
    "flip_map, order",
    [
        pytest.param([], [0, 1, 2, 3, 4], id="no_pairs"),  # coordinates mirrored, keypoints keep their slots
        pytest.param([("left_fin", "right_fin")], [0, 2, 1, 3, 4], id="fins_paired"),  # the pair swaps, the rest stay
    ],
)
def test_horizontal_flip_mirrors_x_and_swaps_only_flip_pairs(tmp_path, name, flip_map, order):
    register_coco_keypoints(
        name, write(tmp_path, coco_json()), str(tmp_path), keypoint_flip_map=flip_map, keypoint_oks_sigmas=SIGMAS
    )
    flip_indices = create_keypoint_hflip_indices([name])
    assert flip_indices == order
    mapper = DatasetMapper(
        True,
        augmentations=[T.RandomFlip(prob=1.0, horizontal=True, vertical=False)],
        image_format="BGR",
        use_keypoint=True,
        keypoint_hflip_indices=flip_indices,
    )
    for record in DatasetCatalog.get(name):
        before = np.array(record["annotations"][0]["keypoints"]).reshape(-1, 3)
        after = mapper(record)["instances"].gt_keypoints.tensor[0].numpy()
        assert np.allclose(after[:, 0], WIDTH - before[order, 0])
        assert np.allclose(after[:, 1:], before[order, 1:])
