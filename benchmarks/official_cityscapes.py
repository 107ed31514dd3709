"""The official Cityscapes instance evaluation, run the way detectron2's CityscapesInstanceEvaluator
runs it: one PNG per predicted mask and a text file per image, then cityscapesscripts'
`evaluateImgLists`. The reference of benchmarks/cityscapes.py and of the tests; not used in training.

cityscapesscripts 2.3.0 does not run on NumPy 2.4 as shipped, in two places; `numpy_2_shims()`
mends both for the duration of the call only, without changing a number:
  * it calls `np.in1d`, which NumPy 2.4 removed (np.isin, flattened, is what in1d returned);
  * it writes `matches.json` with a JSON fallback that reads `o.__dict__`, and NumPy 2's
    `count_nonzero` returns numpy integers, which have none (they are written as Python ints here).
"""

import contextlib
import json
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image


@contextlib.contextmanager
def numpy_2_shims(official):
    """Let the official module `official` run on NumPy 2.4 while the context lasts."""
    added_in1d = not hasattr(np, "in1d")
    if added_in1d:
        np.in1d = lambda values, test_values: np.isin(values, test_values).ravel()
    write_json = official.writeDict2JSON

    def write_numpy_scalars_too(data, path):
        with open(path, "w") as f:
            json.dump(data, f, default=lambda o: o.item() if isinstance(o, np.generic) else o.__dict__)

    official.writeDict2JSON = write_numpy_scalars_too
    try:
        yield
    finally:
        official.writeDict2JSON = write_json
        if added_in1d:
            del np.in1d


def write_predictions(pred_dir: str, image_file: str, masks: np.ndarray, label_ids: Sequence[int], scores) -> None:
    """Write one image's predictions as detectron2 does for the official code: `<image>_pred.txt`
    with a line `<png> <label id> <score>` per (N, H, W) bool mask, each mask a 0/255 PNG."""
    os.makedirs(pred_dir, exist_ok=True)
    base = os.path.splitext(os.path.basename(image_file))[0]
    with open(os.path.join(pred_dir, base + "_pred.txt"), "w") as txt:
        for i, (mask, label_id, score) in enumerate(zip(masks, label_ids, scores)):
            png = f"{base}_{i}_{int(label_id)}.png"
            Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255).save(os.path.join(pred_dir, png))
            txt.write(f"{png} {int(label_id)} {float(score)!r}\n")  # repr: the score's exact value


def evaluate_official(gt_files: list[str], pred_dir: str, work_dir: str) -> dict:
    """The official result dict ("averages", "resultApMatrix", ...) for the instance images
    `gt_files` and the predictions in `pred_dir`. Its caches and `matches.json` go to `work_dir`."""
    import cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling as official

    args = official.args
    args.predictionPath = os.path.abspath(pred_dir)
    args.predictionWalk = None
    args.JSONOutput = False
    args.quiet = True
    args.colorized = False
    os.makedirs(work_dir, exist_ok=True)
    args.gtInstancesFile = os.path.join(work_dir, "gtInstances.json")
    if os.path.exists(args.gtInstancesFile):
        os.remove(args.gtInstancesFile)  # the official code would reuse ground truth cached for other images
    predictions = [official.getPrediction(gt, args) for gt in gt_files]
    cwd = os.getcwd()
    os.chdir(work_dir)  # it writes matches.json into the working directory
    try:
        with numpy_2_shims(official):
            return official.evaluateImgLists(predictions, list(gt_files), args)
    finally:
        os.chdir(cwd)
