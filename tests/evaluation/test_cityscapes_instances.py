"""CityscapesInstanceEvaluator against the official cityscapesscripts evaluation, run as detectron2
runs it (a PNG per mask, then evaluateImgLists) on the same predictions: the AP matrix and every
average must be float-equal."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from detectron2.data import MetadataCatalog
from PIL import Image

from benchmarks.cityscapes import model_output, simulated_predictions
from benchmarks.official_cityscapes import evaluate_official, write_predictions
from mask_rcnn_ext.data.cityscapes import CityscapesTree, cityscapes_metadata
from mask_rcnn_ext.data.cityscapes_labels import THING_CLASSES, name2label
from mask_rcnn_ext.data.synthetic_cityscapes import SyntheticCityscapesSpec, write_split
from mask_rcnn_ext.evaluation import CityscapesInstanceEvaluator, average_precisions, average_results, match_image

from conftest import REPO_ROOT

PERSON, RIDER, CAR, TRUCK, BUS, CARAVAN, BICYCLE = (
    name2label[n].id for n in ("person", "rider", "car", "truck", "bus", "caravan", "bicycle")
)
STATIC = name2label["static"].id  # a void label


def box(shape, y0, y1, x0, x1):
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


class Scene:
    """One image: an instance image and predictions, written for the official code too."""

    def __init__(self, height=60, width=80):
        self.ids = np.zeros((height, width), np.int32)
        self.masks, self.labels, self.scores = [], [], []

    def region(self, value, y0, y1, x0, x1):
        self.ids[y0:y1, x0:x1] = value
        return box(self.ids.shape, y0, y1, x0, x1)

    def predict(self, mask, label, score):
        self.masks.append(mask)
        self.labels.append(label)
        self.scores.append(np.float32(score))


def evaluate_both(tmp_path, scenes):
    """(official result dict, our (1, 8, 10) AP matrix, our averages) of `scenes`."""
    gt_files, ours = [], []
    for i, scene in enumerate(scenes):
        prefix = f"city_{i:06d}_000019"
        gt_dir = tmp_path / "gtFine" / "val" / "city"
        gt_dir.mkdir(parents=True, exist_ok=True)
        gt_file = str(gt_dir / f"{prefix}_gtFine_instanceIds.png")
        Image.fromarray(scene.ids.astype(np.uint16)).save(gt_file)
        gt_files.append(gt_file)
        masks = np.array(scene.masks, bool).reshape(-1, *scene.ids.shape)
        write_predictions(str(tmp_path / "pred"), f"{prefix}_leftImg8bit.png", masks, scene.labels, scene.scores)
        ours.append(match_image(scene.ids, torch.from_numpy(masks), scene.labels, np.array(scene.scores)))
    official = evaluate_official(gt_files, str(tmp_path / "pred"), str(tmp_path / "work"))
    ap = average_precisions(ours)
    return official, ap, average_results(ap)


def assert_float_equal(official, ap, averages):
    assert np.array_equal(np.array(official["resultApMatrix"]), ap, equal_nan=True)
    expected = official["averages"]
    for key in ("allAp", "allAp50%"):
        assert np.array_equal(expected[key], averages[key], equal_nan=True), key
    for name in THING_CLASSES:
        for key in ("ap", "ap50%"):
            assert np.array_equal(expected["classes"][name][key], averages["classes"][name][key], equal_nan=True)


def class_ap(averages, name):
    return averages["classes"][name]["ap"]


def test_ties_and_duplicates(tmp_path):
    s = Scene()
    a = s.region(PERSON * 1000, 0, 20, 0, 10)
    b = s.region(PERSON * 1000 + 1, 0, 20, 20, 30)
    c = s.region(CAR * 1000, 30, 50, 0, 15)
    s.predict(a, PERSON, 0.9)
    s.predict(a & ~box(a.shape, 0, 3, 0, 10), PERSON, 0.9)  # a duplicate with the same score
    s.predict(a, PERSON, 0.4)  # a duplicate with a lower score
    s.predict(b, PERSON, 0.9)
    s.predict(box(a.shape, 40, 55, 40, 60), PERSON, 0.9)  # a false positive tied with the rest
    s.predict(c, CAR, 0.5)
    official, ap, averages = evaluate_both(tmp_path, [s])
    assert_float_equal(official, ap, averages)
    assert class_ap(averages, "car") == 1.0 and 0 < class_ap(averages, "person") < 1


def test_groups_void_and_caravans_are_ignored_as_officially(tmp_path):
    s = Scene()
    group = s.region(PERSON, 0, 20, 0, 20)  # a person group: bare label id
    s.region(STATIC, 0, 20, 40, 60)  # void
    caravan = s.region(CARAVAN * 1000, 30, 50, 0, 20)
    car = s.region(CAR * 1000, 30, 50, 40, 60)
    person = s.region(PERSON * 1000, 50, 60, 60, 80)
    s.predict(group, PERSON, 0.8)  # on the group: ignored
    s.predict(box(group.shape, 0, 20, 10, 30), PERSON, 0.7)  # half on the group: ignored below t = 0.5
    s.predict(box(group.shape, 0, 20, 42, 62), PERSON, 0.6)  # mostly void
    s.predict(caravan, CAR, 0.9)  # caravan instances are not void: a false positive car
    s.predict(caravan, CARAVAN, 0.9)  # a caravan prediction: not evaluated
    s.predict(car, CAR, 0.3)
    s.predict(person, PERSON, 0.5)
    official, ap, averages = evaluate_both(tmp_path, [s])
    assert_float_equal(official, ap, averages)
    assert class_ap(averages, "car") < 1.0


def test_classes_without_predictions_or_ground_truth(tmp_path):
    s = Scene()
    s.region(TRUCK * 1000, 0, 20, 0, 20)  # ground truth, no prediction: AP 0
    car = s.region(CAR * 1000, 30, 50, 0, 20)
    s.predict(car, CAR, 0.9)
    s.predict(box(car.shape, 0, 20, 40, 60), BUS, 0.9)  # prediction, no ground truth: NaN
    official, ap, averages = evaluate_both(tmp_path, [s, Scene()])  # and an image without predictions
    assert_float_equal(official, ap, averages)
    assert class_ap(averages, "truck") == 0.0 and np.isnan(class_ap(averages, "bus"))
    assert averages["allAp"] == pytest.approx(0.5)  # NaN classes are left out of the mean


def test_instances_under_100_pixels_are_ignore_regions(tmp_path):
    s = Scene()
    small = s.region(BICYCLE * 1000, 0, 9, 0, 11)  # 99 pixels
    big = s.region(BICYCLE * 1000 + 1, 20, 30, 0, 10)  # 100 pixels: scored
    s.predict(small, BICYCLE, 0.9)  # matches the small one: neither true nor false positive
    s.predict(box(small.shape, 0, 9, 6, 17), BICYCLE, 0.8)  # half on it
    s.predict(big, BICYCLE, 0.7)
    official, ap, averages = evaluate_both(tmp_path, [s])
    assert_float_equal(official, ap, averages)
    assert class_ap(averages, "bicycle") == 1.0


def test_official_crash_case_gives_zero(tmp_path):
    """cityscapesScripts #89: a class with ground truth whose only prediction is ignored. The
    official code fails (IndexError); ours gives AP 0, as the official code does without it."""
    s = Scene()
    s.region(STATIC, 0, 20, 0, 20)
    s.region(RIDER * 1000, 30, 50, 0, 20)
    car = s.region(CAR * 1000, 30, 50, 40, 60)
    s.predict(car, CAR, 0.9)
    s.predict(box(car.shape, 0, 20, 0, 20), RIDER, 0.9)  # all on void
    ap = average_precisions([match_image(s.ids, torch.from_numpy(np.array(s.masks)), s.labels, s.scores)])
    with pytest.raises(IndexError):
        evaluate_both(tmp_path / "with", [s])
    s.masks, s.labels, s.scores = s.masks[:1], s.labels[:1], s.scores[:1]
    official, _, _ = evaluate_both(tmp_path / "without", [s])
    assert_float_equal(official, ap, average_results(ap))
    assert class_ap(average_results(ap), "rider") == 0.0


@pytest.fixture(scope="module")
def synthetic_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic_cityscapes")
    write_split(SyntheticCityscapesSpec("val", 12, seed=5, cities=("frankfurt", "lindau")), str(root))
    return CityscapesTree(str(root / "leftImg8bit" / "val"), str(root / "gtFine" / "val"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_scenes_equal_official(tmp_path, synthetic_tree, seed):
    rng = np.random.default_rng(seed)
    scenes = []
    for image_file in synthetic_tree.image_files():
        scene = Scene()
        scene.ids = synthetic_tree.instance_ids(image_file)
        masks, scene.labels, scene.scores = simulated_predictions(scene.ids, rng)
        scene.masks = list(masks)
        scenes.append(scene)
    official, ap, averages = evaluate_both(tmp_path, scenes)
    assert_float_equal(official, ap, averages)
    assert 0.1 < averages["allAp"] < 0.9  # a mix of hits and misses, not a degenerate case


@pytest.fixture
def registered_tree(synthetic_tree):
    name = "test_cityscapes_evaluator_tree"
    if name in MetadataCatalog.list():
        MetadataCatalog.remove(name)
    MetadataCatalog.get(name).set(**cityscapes_metadata(synthetic_tree))
    return name


def test_evaluator_scores_only_the_images_it_is_given(tmp_path, synthetic_tree, registered_tree):
    rng = np.random.default_rng(7)
    evaluator = CityscapesInstanceEvaluator(registered_tree, output_dir=str(tmp_path / "out"), distributed=False)
    evaluator.reset()
    images = synthetic_tree.image_files()[:5]
    for image_file in images:
        masks, labels, scores = simulated_predictions(synthetic_tree.instance_ids(image_file), rng)
        evaluator.process([{"file_name": image_file}], [model_output(masks, labels, scores)])
        write_predictions(str(tmp_path / "pred"), image_file, masks, labels, scores)
    results = evaluator.evaluate()["cityscapes_segm"]
    official = evaluate_official(
        [synthetic_tree.gt_file(f) for f in images], str(tmp_path / "pred"), str(tmp_path / "work")
    )
    assert results["AP"] == 100 * official["averages"]["allAp"]
    assert results["AP50"] == 100 * official["averages"]["allAp50%"]
    for name in THING_CLASSES:
        assert np.array_equal(results[f"AP-{name}"], 100 * official["averages"]["classes"][name]["ap"], equal_nan=True)
    assert os.path.isfile(tmp_path / "out" / "cityscapes_instances.json")
    assert not os.path.exists("matches.json")  # nothing written to the working directory


def test_masks_of_another_size_name_the_image(synthetic_tree, registered_tree):
    evaluator = CityscapesInstanceEvaluator(registered_tree, distributed=False)
    image_file = synthetic_tree.image_files()[0]
    masks = np.zeros((1, 10, 10), bool)
    with pytest.raises(ValueError, match=os.path.basename(image_file)):
        evaluator.process([{"file_name": image_file}], [model_output(masks, [PERSON], np.ones(1, np.float32))])


DISTRIBUTED_SCRIPT = """
import json, sys
import numpy as np
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.data import MetadataCatalog
from mask_rcnn_ext.data.cityscapes import CityscapesTree, cityscapes_metadata
from mask_rcnn_ext.evaluation import CityscapesInstanceEvaluator
from benchmarks.cityscapes import model_output, simulated_predictions

def worker(rank, tree, out):
    dist.init_process_group("gloo", init_method="file://" + out + ".init", rank=rank, world_size=2)
    MetadataCatalog.get("tree").set(**cityscapes_metadata(tree))
    evaluator = CityscapesInstanceEvaluator("tree")
    for i, image_file in enumerate(tree.image_files()):
        masks, labels, scores = simulated_predictions(tree.instance_ids(image_file), np.random.default_rng(i))
        if i % 2 == rank:  # each process sees half of the images, as detectron2's inference sampler
            evaluator.process([{{"file_name": image_file}}], [model_output(masks, labels, scores)])
    results = evaluator.evaluate()
    if rank == 0:
        with open(out, "w") as f:
            json.dump(results, f)
    else:
        assert results == {{}}
    dist.barrier()
    dist.destroy_process_group()

if __name__ == "__main__":
    mp.spawn(worker, args=(CityscapesTree({image_dir!r}, {gt_dir!r}), {out!r}), nprocs=2)
"""


def test_two_processes_give_the_single_process_results(tmp_path, synthetic_tree, registered_tree):
    out = str(tmp_path / "results.json")
    script = tmp_path / "distributed.py"
    script.write_text(
        DISTRIBUTED_SCRIPT.format(image_dir=synthetic_tree.image_dir, gt_dir=synthetic_tree.gt_dir, out=out)
    )
    subprocess.run([sys.executable, str(script)], env=dict(os.environ, PYTHONPATH=REPO_ROOT), check=True, timeout=300)
    evaluator = CityscapesInstanceEvaluator(registered_tree, distributed=False)
    for i, image_file in enumerate(synthetic_tree.image_files()):
        masks, labels, scores = simulated_predictions(synthetic_tree.instance_ids(image_file), np.random.default_rng(i))
        evaluator.process([{"file_name": image_file}], [model_output(masks, labels, scores)])
    single = evaluator.evaluate()["cityscapes_segm"]
    with open(out) as f:
        gathered = json.load(f)["cityscapes_segm"]
    assert gathered.keys() == single.keys()
    assert all(np.array_equal(gathered[k], single[k], equal_nan=True) for k in single)
