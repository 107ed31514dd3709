"""What the synthetic generator makes: `SyntheticSpec`, the classes, and the generator id that a
split's json records (a cached split whose id differs is regenerated)."""

import dataclasses

# Bump when the generated content changes for the same spec: cached splits then regenerate.
GENERATOR_VERSION = 2

PERSON_CLASS = "person"
SHAPE_CLASSES = ("star", "crescent", "ring", "blob", "cross", "horseshoe")
THING_CLASSES = (PERSON_CLASS,) + SHAPE_CLASSES  # COCO category id = index + 1


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. Two equal specs give identical splits.

    Attributes:
        num_images: images in the split.
        seed: base seed; image `i` uses the seed sequence (seed, i).
        min_side, max_side: image height and width are drawn from [min_side, max_side].
        min_objects, max_objects: shape objects per image (before placement rejections).
        person_probability: chance that an image has people.
        min_people, max_people: people in an image that has people.
        min_object_size, max_object_size: object diameter in pixels (log-uniform).
        min_person_height, max_person_height: stick-figure height in pixels.
        min_visible_fraction: an instance keeps at least this fraction of itself visible.
        min_visible_pixels: an instance keeps at least this many visible pixels.
    """

    num_images: int
    seed: int
    min_side: int = 224
    max_side: int = 320
    min_objects: int = 2
    max_objects: int = 8
    person_probability: float = 0.6
    min_people: int = 1
    max_people: int = 2
    min_object_size: int = 24
    max_object_size: int = 140
    min_person_height: int = 80
    max_person_height: int = 220
    min_visible_fraction: float = 0.4
    min_visible_pixels: int = 25


def generator_id(spec: SyntheticSpec) -> dict:
    """The generator version and `spec`, as a split's json records them under info["generator"]."""
    return {"version": GENERATOR_VERSION, "spec": dataclasses.asdict(spec)}
