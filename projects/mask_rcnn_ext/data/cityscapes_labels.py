"""The Cityscapes labels as the official tools define them (`cityscapesscripts.helpers.labels`).

Instance images store a group region of a class as its label id (e.g. 26 for a car group) and an
instance as `label id * 1000 + k`; `label_id_of` undoes that.
"""

try:
    from cityscapesscripts.helpers.labels import labels, name2label
except ImportError as error:  # pragma: no cover - it is in requirements.txt
    raise ImportError("Cityscapes support needs the official label table: pip install cityscapesscripts") from error

# The 8 classes evaluated with instances, in label-id order: person 24, rider 25, car 26, truck 27,
# bus 28, train 31, motorcycle 32, bicycle 33 (caravan 29 and trailer 30 have instances but are
# ignored in evaluation). Their index here is the contiguous class id of our models.
THING_LABELS = [label for label in labels if label.hasInstances and not label.ignoreInEval]
THING_CLASSES: list[str] = [label.name for label in THING_LABELS]
THING_LABEL_IDS: list[int] = [label.id for label in THING_LABELS]
# Pixels whose instance-image value is one of these count as void in evaluation (caravan and
# trailer *groups* among them; their instances, 29000+, do not).
EVAL_VOID_LABEL_IDS: list[int] = [label.id for label in labels if label.ignoreInEval]


def label_id_of(instance_id: int) -> int:
    """The label id of an instance-image value: the value itself below 1000, else value // 1000."""
    return instance_id if instance_id < 1000 else instance_id // 1000


__all__ = [
    "EVAL_VOID_LABEL_IDS",
    "THING_CLASSES",
    "THING_LABEL_IDS",
    "label_id_of",
    "name2label",
]
