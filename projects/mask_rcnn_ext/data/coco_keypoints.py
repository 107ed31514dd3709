"""Registers a COCO-format keypoint dataset with any keypoint set, and checks keypoint-set metadata.

detectron2's `register_coco_instances` leaves the keypoint metadata to the caller. Here the keypoint
names and skeleton come from the json's category, and everything training, evaluation and drawing
read is filled in: `keypoint_names`, `keypoint_flip_map`, `keypoint_oks_sigmas` and
`keypoint_connection_rules`.
"""

import json
import statistics
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Optional

from detectron2.data import DatasetCatalog, Metadata, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from detectron2.utils.colormap import colormap
from detectron2.utils.file_io import PathManager
from pycocotools.cocoeval import Params

# COCO's 17 person keypoint sigmas, as pycocotools defines them; COCOEvaluator uses them when given none.
COCO_PERSON_OKS_SIGMAS = tuple(float(s) for s in Params(iouType="keypoints").kpt_oks_sigmas)

# The OKS sigma of each keypoint of a set registered without its own: the mean of COCO's 17 (to 3
# decimals), i.e. every keypoint is taken to be as precisely placeable as an average COCO body
# keypoint - stricter than hips, laxer than eyes. A guess, hence the warning: per-keypoint sigmas
# measured as COCO's were (spread of repeated annotations relative to object scale) are better.
DEFAULT_OKS_SIGMA = round(statistics.fmean(COCO_PERSON_OKS_SIGMAS), 3)


def resolve_oks_sigmas(metadata: Metadata, given: Optional[Sequence[float]] = None) -> list[float]:
    """(K,) the OKS sigmas keypoint AP uses for a dataset: `given` unless None or empty, else its
    `metadata`'s keypoint_oks_sigmas, else COCO's 17 person sigmas (COCOEvaluator's default).

    The one place that default is applied: the evaluators and the start-up config checks call it."""
    if given is None or not len(given):
        given = metadata.get("keypoint_oks_sigmas", None)
    return [float(s) for s in (COCO_PERSON_OKS_SIGMAS if given is None else given)]


def keypoint_set_errors(
    names: Sequence[str], flip_map: Sequence[tuple[str, str]] = (), oks_sigmas: Optional[Sequence[float]] = None
) -> list[str]:
    """What is wrong with a keypoint set's metadata, as messages naming the metadata key and values.

    Checks that `keypoint_names` are distinct; that each `keypoint_flip_map` entry pairs two
    different known names and no name is in two pairs; that `keypoint_oks_sigmas`, when given, are
    one positive number per keypoint. Serves registration and the start-up config checks alike.
    """
    errors = []
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        errors.append(f"keypoint_names repeats {repeated}")
    pairs = [tuple(p) for p in flip_map]
    errors += [f"keypoint_flip_map entry {p} is not a (name, name) pair" for p in pairs if len(p) != 2]
    pairs = [p for p in pairs if len(p) == 2]
    unknown = sorted({k for pair in pairs for k in pair} - set(names))
    if unknown:
        errors.append(f"keypoint_flip_map names unknown keypoints {unknown}")
    errors += [f"keypoint_flip_map pairs {a!r} with itself" for a, b in pairs if a == b]
    uses = Counter(k for pair in pairs for k in set(pair))
    errors += [f"keypoint_flip_map puts {k!r} in {n} pairs" for k, n in uses.items() if n > 1]
    if oks_sigmas is not None:
        if len(oks_sigmas) != len(names):
            errors.append(f"{len(oks_sigmas)} keypoint_oks_sigmas for {len(names)} keypoint_names")
        if not all(s > 0 for s in oks_sigmas):
            errors.append(f"keypoint_oks_sigmas must be positive, got {list(oks_sigmas)}")
    return errors


def register_coco_keypoints(
    name: str,
    json_file: str,
    image_root: str,
    *,
    keypoint_flip_map: Sequence[tuple[str, str]] = (),
    keypoint_oks_sigmas: Optional[Sequence[float]] = None,
) -> None:
    """Register the COCO-format keypoint json `json_file` (images under `image_root`) as `name`.

    The keypoint names and skeleton (1-based index pairs, optional) are those of the json's
    categories that have `keypoints`. The json is read now, so a bad file fails here rather than
    in training; the records are loaded by detectron2's `load_coco_json` on first use.

    Args:
        keypoint_flip_map: (name, name) pairs that swap under a horizontal flip, e.g.
            ("left_ear", "right_ear"). Default none: a flip then mirrors the coordinates only.
        keypoint_oks_sigmas: each keypoint's OKS sigma for COCO keypoint AP, in keypoint order.
            Default DEFAULT_OKS_SIGMA for every keypoint, with a warning.

    Sets the metadata: thing_classes and thing_dataset_id_to_contiguous_id (as `load_coco_json`
    does), keypoint_names, keypoint_flip_map, keypoint_oks_sigmas, keypoint_connection_rules (one
    colour per skeleton edge, as detectron2's Visualizer draws them), evaluator_type "coco",
    json_file and image_root.

    Raises:
        ValueError: naming `json_file` and every fault found: no keypoint category, categories
            with different keypoints, skeleton indices outside 1..K, annotations without 3K
            keypoint values, or a flip map or sigmas that do not fit the keypoint names.
    """
    with PathManager.open(json_file) as f:
        try:
            coco = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{json_file} is not valid JSON: {e}") from e
    names, skeleton = _keypoints_and_skeleton(coco, json_file)
    errors = _skeleton_errors(skeleton, len(names)) + _annotation_errors(coco, len(names))
    errors += keypoint_set_errors(names, keypoint_flip_map, keypoint_oks_sigmas)
    if errors:
        raise ValueError(f"Cannot register keypoint dataset '{name}' from {json_file}:\n  - " + "\n  - ".join(errors))
    if keypoint_oks_sigmas is None:
        warnings.warn(
            f"Keypoint dataset '{name}' ({json_file}) has no keypoint_oks_sigmas; its keypoint AP uses "
            f"sigma {DEFAULT_OKS_SIGMA} for each of its {len(names)} keypoints. Pass "
            f"keypoint_oks_sigmas to register_coco_keypoints to set them per keypoint.",
            stacklevel=2,
        )
        keypoint_oks_sigmas = [DEFAULT_OKS_SIGMA] * len(names)

    categories = sorted(coco["categories"], key=lambda c: c["id"])
    DatasetCatalog.register(name, lambda: load_coco_json(json_file, image_root, name))
    MetadataCatalog.get(name).set(
        thing_classes=[c["name"] for c in categories],
        thing_dataset_id_to_contiguous_id={c["id"]: i for i, c in enumerate(categories)},
        keypoint_names=names,
        keypoint_flip_map=[tuple(p) for p in keypoint_flip_map],
        keypoint_oks_sigmas=[float(s) for s in keypoint_oks_sigmas],
        keypoint_connection_rules=_connection_rules(names, skeleton),
        evaluator_type="coco",
        json_file=json_file,
        image_root=image_root,
    )


def _keypoints_and_skeleton(coco: dict, json_file: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The keypoint names shared by the keypoint categories, and the union of their skeleton edges."""
    if not isinstance(coco, dict) or not isinstance(coco.get("categories"), list):
        raise ValueError(f"{json_file} has no 'categories' list; is it a COCO annotation file?")
    with_keypoints = [c for c in coco["categories"] if c.get("keypoints")]
    if not with_keypoints:
        raise ValueError(f"{json_file}: no category has 'keypoints' (the keypoint names); is it a COCO keypoint file?")
    if len({tuple(c["keypoints"]) for c in with_keypoints}) > 1:
        listing = "; ".join(f"{c.get('name')!r}: {c['keypoints']}" for c in with_keypoints)
        raise ValueError(
            f"{json_file}: categories name different keypoints ({listing}); a model learns one keypoint set"
        )
    skeleton = dict.fromkeys(tuple(edge) for c in with_keypoints for edge in c.get("skeleton", []))
    return list(with_keypoints[0]["keypoints"]), list(skeleton)


def _skeleton_errors(skeleton: Sequence[tuple], num_keypoints: int) -> list[str]:
    bad = [
        list(e) for e in skeleton if len(e) != 2 or not all(isinstance(i, int) and 1 <= i <= num_keypoints for i in e)
    ]
    return [f"skeleton edges {bad} are not pairs of keypoint indices in 1..{num_keypoints}"] if bad else []


def _annotation_errors(coco: dict, num_keypoints: int) -> list[str]:
    # detectron2 stacks the keypoints of an image's annotations into one tensor, so every
    # annotation needs all 3K values (zeros where unlabelled), whatever its category.
    bad = [a.get("id") for a in coco.get("annotations", []) if len(a.get("keypoints") or ()) != 3 * num_keypoints]
    if not bad:
        return []
    return [
        f"{len(bad)} annotations (ids {bad[:5]}{' ...' if len(bad) > 5 else ''}) lack the "
        f"{3 * num_keypoints} keypoint values (x, y, v for each of {num_keypoints} keypoints)"
    ]


def _connection_rules(names: Sequence[str], skeleton: Sequence[tuple[int, int]]) -> list[tuple]:
    """detectron2 Visualizer's `keypoint_connection_rules`: (name, name, RGB 0-255) per skeleton edge,
    edge i coloured by entry i of detectron2's colormap (74 distinct colours, then repeated)."""
    colours = [tuple(c) for c in colormap(rgb=True, maximum=255).round().astype(int).tolist()]
    return [(names[a - 1], names[b - 1], colours[i % len(colours)]) for i, (a, b) in enumerate(skeleton)]
