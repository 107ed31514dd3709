"""`MaskRCNN`: detectron2's GeneralizedRCNN whose test post-processing pastes masks with our
`paste_masks` (`mask_pasting.py`: the same bits, fewer calls on the CPU).

Same modules and parameters as GeneralizedRCNN, so checkpoints of either load into the other;
training is GeneralizedRCNN's own. Our configs set MODEL.META_ARCHITECTURE: "MaskRCNN".
"""

from typing import Optional

import torch
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.structures import Instances

from .mask_pasting import PastedROIMasks


@META_ARCH_REGISTRY.register()
class MaskRCNN(GeneralizedRCNN):
    def inference(
        self,
        batched_inputs: list[dict[str, torch.Tensor]],
        detected_instances: Optional[list[Instances]] = None,
        do_postprocess: bool = True,
    ):
        """GeneralizedRCNN.inference; with do_postprocess, each image's (R, 1, M, M) `pred_masks`
        reach detectron2's `detector_postprocess` as PastedROIMasks, which that function pastes
        into (R, height, width) bool masks by calling their `to_bitmasks`."""
        results = super().inference(batched_inputs, detected_instances, do_postprocess=False)
        if not do_postprocess:
            return results
        for per_image in results:
            if per_image.has("pred_masks"):
                per_image.pred_masks = PastedROIMasks(per_image.pred_masks[:, 0])
        return GeneralizedRCNN._postprocess(results, batched_inputs, [per_image.image_size for per_image in results])
