"""Ground-truth bitmasks of sampled proposals, gathered only when read.

detectron2's `ROIHeads.label_and_sample_proposals` gives each sampled proposal (512 an image) the
fields of its matched ground truth by indexing them; for BitMasks that copies one full-image mask
per proposal: hundreds of full-image bool copies of a few masks, live through the box and mask
heads. They are a large part of a training step's peak memory, and why torchvision (which indexes
per image) needs less (`benchmarks/peers.py` measures training memory against both).

`ProposalBitMasks` is a BitMasks that keeps the image's G masks once and each proposal's index
into them: indexing composes the indices, and `tensor` gathers the selected masks only when read.
Every BitMasks method reads `tensor`, so each behaves as before; our mask loss crops in chunks
(`mask_losses.BITMASK_CROP_CHUNK`), so at most a chunk of masks is ever gathered.
`ProposalMasksSampling` puts it in place for the ROI heads' proposal sampling.
"""

from typing import Optional

import torch
from detectron2.structures import BitMasks, Instances


class ProposalBitMasks(BitMasks):
    """BitMasks (N, H, W) = image_masks (G, H, W)[indices (N,)], gathered when `tensor` is read."""

    def __init__(self, image_masks: torch.Tensor, indices: Optional[torch.Tensor] = None):
        # BitMasks.__init__ would store a tensor; here `tensor` is computed from these two.
        self.image_masks = image_masks
        self.indices = torch.arange(len(image_masks), device=image_masks.device) if indices is None else indices
        self.image_size = image_masks.shape[1:]

    @property
    def tensor(self) -> torch.Tensor:
        return self.image_masks[self.indices]

    @property
    def device(self) -> torch.device:
        return self.image_masks.device

    def to(self, *args, **kwargs) -> "ProposalBitMasks":
        image_masks = self.image_masks.to(*args, **kwargs)
        return ProposalBitMasks(image_masks, self.indices.to(device=image_masks.device))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item) -> "ProposalBitMasks":
        """As BitMasks: an int gives one mask, a slice, bool mask or index tensor a subset."""
        indices = self.indices[item]
        return ProposalBitMasks(self.image_masks, indices.view(1) if indices.dim() == 0 else indices)

    def __repr__(self) -> str:
        return f"ProposalBitMasks(num_instances={len(self)} of {len(self.image_masks)})"


class ProposalMasksSampling:
    """A mixin for detectron2's ROIHeads: sampled proposals get their ground-truth BitMasks as
    ProposalBitMasks, without a copy per proposal. Losses and gradients are unchanged
    (`tests/modeling/test_roi_heads.py` compares with detectron2's heads on bitmask targets)."""

    @torch.no_grad()
    def label_and_sample_proposals(self, proposals, targets):
        return super().label_and_sample_proposals(proposals, [_with_proposal_bitmasks(t) for t in targets])


def _with_proposal_bitmasks(targets: Instances) -> Instances:
    """`targets` with BitMasks gt_masks as ProposalBitMasks (a new Instances; the input is kept)."""
    if not targets.has("gt_masks") or type(targets.gt_masks) is not BitMasks:
        return targets
    fields = dict(targets.get_fields(), gt_masks=ProposalBitMasks(targets.gt_masks.tensor))
    return Instances(targets.image_size, **fields)
