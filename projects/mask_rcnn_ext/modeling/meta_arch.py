"""`MaskRCNN`: detectron2's GeneralizedRCNN that computes in the precision and memory format its
config asks for (`precision.py`), and whose test post-processing pastes masks with our
`paste_masks` (`mask_pasting.py`: the same bits, fewer calls on the CPU).

Same modules and parameters as GeneralizedRCNN, so checkpoints of either load into the other;
training is GeneralizedRCNN's own. Our configs set MODEL.META_ARCHITECTURE: "MaskRCNN".

In bf16 or fp16 the networks run under autocast, and what reads their results is float32:
* the heads' last layers (FLOAT32_LAYERS: RPN objectness and deltas, box predictor, mask predictor,
  keypoint deconv) compute in float32 from the features, so that anchor and box decoding,
  clipping, RoI coordinates, top-k and NMS, the mask read-out, keypoint decoding and the losses
  get float32 logits and deltas;
* GroupNorm layers compute in float32, as CUDA's autocast runs them. CPU's autocast runs them in
  bf16, which cost the synthetic Cityscapes model (R18-GN-FPN) 1.0 Cityscapes AP; in float32 it is
  within 0.25 of fp32 (docs/performance.md#precision);
* our mask and keypoint heads' logits are cast to float32 whatever their layers (`BaseMaskHead`,
  `BaseKeypointHead`);
* every loss, and every floating field of the returned Instances; mask pasting and thresholding run
  after the autocast region ends.
RoI feature ops sample in float32 at least: torchvision's RoIAlign / RoIPool cast under autocast,
ours (`roi_feature_ops.py`) sample in float32 whatever the features' dtype.

In bf16, fp16 or channels-last, the ROI heads get the features in float32 and torch's contiguous
layout, one copy per level (`features_for_pooling`): RoIAlign's kernels read that layout, and
each pooler (box, mask, keypoint) would otherwise cast and transpose every level again, and
transposing P2 is one of the larger copies of an inference (docs/performance.md#precision).
"""

import logging
from typing import Optional

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.structures import Boxes, ImageList, Instances

from .mask_pasting import PastedROIMasks
from .precision import Float32Island, Precision, resolve_precision

logger = logging.getLogger(__name__)

# The layers whose outputs are logits or box deltas, by their names in detectron2's and our heads:
# under autocast they run in float32 (`Float32Island`). Those a model lacks are skipped.
FLOAT32_LAYERS = (
    "proposal_generator.rpn_head.objectness_logits",
    "proposal_generator.rpn_head.anchor_deltas",
    "roi_heads.box_predictor",
    "roi_heads.mask_head.predictor",
    "roi_heads.keypoint_head.score_lowres",
)


def features_for_pooling(features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`features` ({name: (N, C, H, W)}) in float32 and the contiguous layout, what RoI feature
    ops read; one copy per level that is not already (a cast and a transpose at once)."""
    return {name: f.to(dtype=torch.float32, memory_format=torch.contiguous_format) for name, f in features.items()}


def instances_to_float32(instances: Instances) -> Instances:
    """`instances` with every floating tensor field (and the boxes) in float32."""
    for name, value in instances.get_fields().items():
        if isinstance(value, Boxes):
            instances.set(name, Boxes(value.tensor.float()))
        elif isinstance(value, torch.Tensor) and value.is_floating_point():
            instances.set(name, value.float())
    return instances


@META_ARCH_REGISTRY.register()
class MaskRCNN(GeneralizedRCNN):
    @configurable
    def __init__(
        self, *, train_precision: str = "fp32", test_precision: str = "fp32", memory_format: str = "auto", **kwargs
    ):
        """
        Args:
            train_precision, test_precision: MASK_RCNN_EXT.PRECISION.TRAIN / TEST (`precision.py`).
            memory_format: MASK_RCNN_EXT.PRECISION.MEMORY_FORMAT.
            kwargs: GeneralizedRCNN's.
        """
        super().__init__(**kwargs)
        self.precision_settings = {True: train_precision, False: test_precision}
        self.memory_format = memory_format
        self._resolved: dict[tuple[bool, str], Precision] = {}
        modules = dict(self.named_modules())
        for name, module in modules.items():
            if name in FLOAT32_LAYERS or isinstance(module, torch.nn.GroupNorm):
                Float32Island.attach(module)
        self.roi_heads.register_forward_pre_hook(self._convert_roi_heads_features)

    @classmethod
    def from_config(cls, cfg):
        node = cfg.MASK_RCNN_EXT.PRECISION
        return dict(
            super().from_config(cfg),
            train_precision=node.TRAIN,
            test_precision=node.TEST,
            memory_format=node.MEMORY_FORMAT,
        )

    def precision(self, training: bool) -> Precision:
        """What the training (or test) setting resolves to on the model's device; logged once."""
        key = (training, str(self.device))
        if key not in self._resolved:
            resolved = resolve_precision(self.precision_settings[training], self.memory_format, self.device, training)
            logger.info(f"MaskRCNN {'training' if training else 'inference'} on {self.device}: {resolved.describe()}")
            self._resolved[key] = resolved
        return self._resolved[key]

    def _convert_roi_heads_features(self, roi_heads: torch.nn.Module, args: tuple) -> Optional[tuple]:
        """Forward pre-hook of the ROI heads, called as `roi_heads(images, features, proposals,
        targets)`: the features for pooling, unless the precision computes detectron2's way."""
        precision = self.precision(self.training)
        if len(args) < 2 or (precision.dtype == torch.float32 and not precision.channels_last):
            return None
        images, features, *rest = args
        return (images, features_for_pooling(features), *rest)

    def forward(self, batched_inputs: list[dict[str, torch.Tensor]]):
        """GeneralizedRCNN.forward, under the precision of the model's mode; losses in float32."""
        if not self.training:
            return self.inference(batched_inputs)
        with self.precision(training=True).autocast(self.device.type):
            losses = super().forward(batched_inputs)
        return {name: loss.float() for name, loss in losses.items()}

    def preprocess_image(self, batched_inputs: list[dict[str, torch.Tensor]]) -> ImageList:
        """GeneralizedRCNN's normalised, padded batch, channels-last where the precision says so."""
        images = super().preprocess_image(batched_inputs)
        if not self.precision(self.training).channels_last:
            return images
        return ImageList(images.tensor.contiguous(memory_format=torch.channels_last), images.image_sizes)

    def inference(
        self,
        batched_inputs: list[dict[str, torch.Tensor]],
        detected_instances: Optional[list[Instances]] = None,
        do_postprocess: bool = True,
    ):
        """GeneralizedRCNN.inference under the test precision, every floating field in float32;
        with do_postprocess, each image's (R, 1, M, M) `pred_masks` reach detectron2's
        `detector_postprocess` as PastedROIMasks, which that function pastes into (R, height, width)
        bool masks by calling their `to_bitmasks`."""
        with self.precision(training=False).autocast(self.device.type):
            results = super().inference(batched_inputs, detected_instances, do_postprocess=False)
        results = [instances_to_float32(per_image) for per_image in results]
        if not do_postprocess:
            return results
        for per_image in results:
            if per_image.has("pred_masks"):
                per_image.pred_masks = PastedROIMasks(per_image.pred_masks[:, 0])
        return GeneralizedRCNN._postprocess(results, batched_inputs, [per_image.image_size for per_image in results])
