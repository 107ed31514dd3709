"""The config keys mask_rcnn_ext adds to detectron2's: all under `cfg.MASK_RCNN_EXT`."""

from detectron2.config import CfgNode as CN

COCO_EVAL_BACKENDS = ("auto", "pycocotools", "detectron2_fast")


def add_mask_rcnn_ext_config(cfg: CN) -> None:
    """Add mask_rcnn_ext's keys, with their defaults, to `cfg` (a detectron2 CfgNode) in place."""
    cfg.MASK_RCNN_EXT = CN()
    cfg.MASK_RCNN_EXT.EVAL = CN()
    # Which COCOeval runs COCO box/mask/keypoint evaluation: "pycocotools" (the reference),
    # "detectron2_fast" (detectron2's C++ COCOeval; needs a detectron2 built with its extension),
    # or "auto": the fast one when the extension is there, else pycocotools. Same numbers.
    cfg.MASK_RCNN_EXT.EVAL.COCO_BACKEND = "auto"

    # Read by every entry point that loads MODEL.WEIGHTS or a checkpoint (engine/checkpoint.py).
    cfg.MASK_RCNN_EXT.WEIGHTS = CN()
    # False: a checkpoint whose tensors do not fit the model (other shapes; or, where the whole model
    # is expected, absent) is refused, naming them. True: what fits is loaded, the rest stays at its
    # initialization, as when fine-tuning a model on another number of classes.
    cfg.MASK_RCNN_EXT.WEIGHTS.ALLOW_PARTIAL = False

    # Read by the MaskRCNN meta-architecture (modeling/precision.py; docs/performance.md#precision).
    cfg.MASK_RCNN_EXT.PRECISION = CN()
    # The dtype training computes in: "fp32", "bf16", "fp16" (CUDA only: loss scaling) or "auto"
    # (bf16 on a CPU with AMX / AVX-512 BF16, else fp32; bf16 or fp16 on a GPU with tensor cores).
    # Losses, box decoding, RoI coordinates, NMS and every output stay float32.
    cfg.MASK_RCNN_EXT.PRECISION.TRAIN = "fp32"
    # The same for inference (evaluation, the demo, DefaultPredictor); "auto" picks fp16 on GPUs.
    cfg.MASK_RCNN_EXT.PRECISION.TEST = "fp32"
    # Layout of images and feature maps: "channels_last", "contiguous", or "auto": channels-last
    # with bf16/fp16 and with "auto" on a CPU, contiguous for an explicit "fp32".
    cfg.MASK_RCNN_EXT.PRECISION.MEMORY_FORMAT = "auto"

    # Read by the Trainer (engine/peer_progress.py; docs/scale_out.md#bounded-waits): how long a process
    # waits for the others before the job ends, saying where each of them last was.
    cfg.MASK_RCNN_EXT.DISTRIBUTED = CN()
    # Training's collectives: the gradient all-reduce of each iteration, the checkpoints' gathers.
    # It must cover the main process writing a checkpoint while the others wait at the next iteration.
    cfg.MASK_RCNN_EXT.DISTRIBUTED.TIMEOUT_MINUTES = 10.0
    # Evaluation (during training and --eval-only): each process's inference on its share, the
    # gathers, and the main process scoring everything while the others wait.
    cfg.MASK_RCNN_EXT.DISTRIBUTED.EVAL_TIMEOUT_MINUTES = 60.0

    # Read by our mask heads (FCNMaskHead, MLPMaskHead and subclasses of BaseMaskHead).
    # Class-agnostic masks are detectron2's MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK.
    cfg.MASK_RCNN_EXT.MASK_HEAD = CN()
    # "sigmoid": per-class binary masks, average binary cross-entropy of the gt class (the paper);
    # "softmax": per-pixel softmax over classes + background, multinomial loss (Table 2(b)).
    cfg.MASK_RCNN_EXT.MASK_HEAD.LOSS = "sigmoid"
    # MLPMaskHead's hidden fc widths (Table 2(e): [1024, 1024] or [1024, 1024, 1024]).
    cfg.MASK_RCNN_EXT.MASK_HEAD.MLP_FC_DIMS = [1024, 1024]
    # Multiplies loss_mask (the paper: 1). The other tasks' weights are detectron2's keys:
    # MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_WEIGHT and MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT.
    cfg.MASK_RCNN_EXT.MASK_HEAD.LOSS_WEIGHT = 1.0

    # Read by our keypoint heads (KeypointMaskHead and its subclasses).
    cfg.MASK_RCNN_EXT.KEYPOINT_HEAD = CN()
    # Bilinear upsampling factor after the deconv: heatmaps of 2 * UP_SCALE * POOLER_RESOLUTION
    # per side. 2 as detectron2 and the paper (14 -> 56).
    cfg.MASK_RCNN_EXT.KEYPOINT_HEAD.UP_SCALE = 2

    # Read by AnyPoolerRes5ROIHeads (C4 models).
    cfg.MASK_RCNN_EXT.RES5_HEAD = CN()
    # Stride of res5's first block: 2 as detectron2 (RoIs pooled 14x14), 1 as the paper's
    # Figure 4 (RoIs pooled 7x7). res5 outputs ROI_BOX_HEAD.POOLER_RESOLUTION / STRIDE per side.
    cfg.MASK_RCNN_EXT.RES5_HEAD.STRIDE = 2
