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
its whole area in view. Masks are written as a COCO polygon when the visible part is one simple
region and the polygon reproduces it pixel for pixel, else as RLE (rings, fragments left by
occlusion); either way the annotation decodes to exactly the mask.

One module per job: `spec` (what to generate), `textures`, `shapes`, `people`, `placement` (an
image and its instances), `coco_format` (annotations and the split's files), `cache` (a split on
disk, regenerated when its spec or the generator changes).
"""

from .cache import ensure_coco_split
from .coco_format import coco_annotations, write_coco_split
from .placement import render_sample
from .spec import PERSON_CLASS, SHAPE_CLASSES, THING_CLASSES, SyntheticSpec
from .textures import TEXTURE_NOISE

__all__ = [
    "PERSON_CLASS",
    "SHAPE_CLASSES",
    "TEXTURE_NOISE",
    "THING_CLASSES",
    "SyntheticSpec",
    "coco_annotations",
    "ensure_coco_split",
    "render_sample",
    "write_coco_split",
]
