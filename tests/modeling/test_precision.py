"""MASK_RCNN_EXT.PRECISION: what each setting resolves to on each kind of CPU and GPU, the config
errors, and a model in bf16 whose decoding, RoI coordinates, NMS, losses and outputs stay float32."""

import pytest
import torch
import torchvision
from detectron2.data import build_detection_train_loader
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from mask_rcnn_ext import build_config
from mask_rcnn_ext.engine.trainer import scales_loss
from mask_rcnn_ext.modeling import precision
from mask_rcnn_ext.modeling.meta_arch import FLOAT32_LAYERS
from mask_rcnn_ext.modeling.precision import Float32Island, precision_config_errors, resolve_precision

from conftest import SYNTHETIC_CONFIG, SYNTHETIC_VAL_MINI

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
# Layers of the demo's model without a norm after them: their outputs are autocast's (its backbone and FPN
# and mask head convolutions are followed by GroupNorm).
BF16_LAYERS = ("roi_heads.box_head.fc1", "roi_heads.keypoint_head.conv_fcn1")
CPU_PROBES = {"amx": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}


def cpu_with(monkeypatch, *features):
    """This process's torch.cpu probes answer as a CPU with `features` (keys of CPU_PROBES) would."""
    for feature, probe in CPU_PROBES.items():
        monkeypatch.setattr(torch.cpu, probe, lambda present=feature in features: present, raising=False)


def gpu_with(monkeypatch, capability):
    monkeypatch.setattr(precision, "cuda_capability", lambda device: capability)


@pytest.mark.parametrize("features", [("amx",), ("avx512_bf16",), ("amx", "avx512_bf16")])
def test_auto_computes_bf16_channels_last_on_a_cpu_with_native_bf16(monkeypatch, features):
    cpu_with(monkeypatch, *features)
    for training in (True, False):
        resolved = resolve_precision("auto", "auto", CPU, training)
        assert (resolved.dtype, resolved.channels_last) == (torch.bfloat16, True)
        assert "natively" in resolved.reason


def test_auto_keeps_fp32_on_a_cpu_without_native_bf16(monkeypatch):
    """Emulated bf16 is several times slower than fp32: auto never takes it."""
    cpu_with(monkeypatch)
    resolved = resolve_precision("auto", "auto", CPU, training=False)
    assert (resolved.dtype, resolved.channels_last) == (torch.float32, True)
    assert "no native bf16" in resolved.reason


def test_explicit_settings_are_kept_and_emulation_is_warned_of(monkeypatch):
    cpu_with(monkeypatch)
    fp32 = resolve_precision("fp32", "auto", CPU, training=True)
    assert (fp32.dtype, fp32.channels_last, fp32.reason) == (torch.float32, False, "as set")  # detectron2's
    bf16 = resolve_precision("bf16", "auto", CPU, training=True)
    assert (bf16.dtype, bf16.channels_last) == (torch.bfloat16, True) and "WARNING" in bf16.reason
    assert resolve_precision("bf16", "contiguous", CPU, training=True).channels_last is False
    assert resolve_precision("fp32", "channels_last", CPU, training=True).channels_last is True
    cpu_with(monkeypatch, "amx")
    assert resolve_precision("bf16", "auto", CPU, training=True).reason == "as set"


@pytest.mark.parametrize(
    "capability, train, test",
    [
        ((9, 0), torch.bfloat16, torch.float16),
        ((8, 0), torch.bfloat16, torch.float16),
        ((7, 5), torch.float16, torch.float16),
        ((6, 1), torch.float32, torch.float32),
    ],
)
def test_auto_on_gpus(monkeypatch, capability, train, test):
    gpu_with(monkeypatch, capability)
    for training, dtype in ((True, train), (False, test)):
        resolved = resolve_precision("auto", "auto", CUDA, training)
        assert resolved.dtype == dtype and resolved.channels_last == (dtype != torch.float32)
    explicit_bf16 = resolve_precision("bf16", "auto", CUDA, training=True)
    assert explicit_bf16.dtype == torch.bfloat16 and ("WARNING" in explicit_bf16.reason) == (capability < (8, 0))


def test_fp16_training_scales_the_loss(monkeypatch):
    gpu_with(monkeypatch, (7, 5))
    cfg = build_config(SYNTHETIC_CONFIG, ["MODEL.DEVICE", "cuda", "MASK_RCNN_EXT.PRECISION.TRAIN", "auto"])
    assert scales_loss(cfg)  # fp16 on 7.5
    gpu_with(monkeypatch, (9, 0))
    assert not scales_loss(cfg)  # bf16 on 9.0
    assert not scales_loss(build_config(SYNTHETIC_CONFIG, ["MODEL.DEVICE", "cpu"]))


@pytest.mark.parametrize(
    "opts, message",
    [
        (["MASK_RCNN_EXT.PRECISION.TEST", "half"], "MASK_RCNN_EXT.PRECISION.TEST='half': expected one of fp32"),
        (["MASK_RCNN_EXT.PRECISION.MEMORY_FORMAT", "nhwc"], "MEMORY_FORMAT='nhwc': expected one of auto"),
        (["MASK_RCNN_EXT.PRECISION.TRAIN", "fp16", "MODEL.DEVICE", "cpu"], "use bf16 on the CPU"),
        (["MASK_RCNN_EXT.PRECISION.TRAIN", "bf16", "SOLVER.AMP.ENABLED", "True"], "SOLVER.AMP.ENABLED=True"),
        (
            ["MASK_RCNN_EXT.PRECISION.TEST", "bf16", "MODEL.META_ARCHITECTURE", "GeneralizedRCNN"],
            "MODEL.META_ARCHITECTURE='GeneralizedRCNN' would ignore it",
        ),
    ],
)
def test_config_errors_name_the_keys(opts, message):
    cfg = build_config(SYNTHETIC_CONFIG, freeze=False)
    cfg.merge_from_list(opts)
    errors = precision_config_errors(cfg)
    assert len(errors) == 1 and message in errors[0], errors


def test_the_default_is_fp32_and_passes():
    cfg = build_config(SYNTHETIC_CONFIG)
    assert (cfg.MASK_RCNN_EXT.PRECISION.TRAIN, cfg.MASK_RCNN_EXT.PRECISION.TEST) == ("fp32", "fp32")
    assert precision_config_errors(cfg) == []


@pytest.mark.parametrize("affine", [True, False])
def test_a_float32_island_computes_in_float32_under_autocast_only(affine):
    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(2, 4, affine=affine)
    Float32Island.attach(norm)
    x = torch.randn(1, 4, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = norm(x.bfloat16())
    assert inside.dtype == torch.float32 and torch.equal(inside, norm(x.bfloat16().float()))
    assert norm(x.bfloat16()).dtype == torch.bfloat16  # no autocast: the hooks leave it alone


@pytest.fixture(scope="module")
def bf16_cfg():
    opts = ["MODEL.DEVICE", "cpu", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "DATALOADER.NUM_WORKERS", "0"]
    opts += ["DATASETS.TRAIN", f"('{SYNTHETIC_VAL_MINI}',)", "INPUT.MIN_SIZE_TRAIN", "(128,)"]
    opts += ["MASK_RCNN_EXT.PRECISION.TRAIN", "bf16", "MASK_RCNN_EXT.PRECISION.TEST", "bf16"]
    return build_config(SYNTHETIC_CONFIG, opts)


@pytest.fixture(scope="module")
def batch(bf16_cfg):
    return next(iter(build_detection_train_loader(bf16_cfg)))


class DtypeRecorder:
    """Records the dtypes (and channels-last layout) of what the model's parts receive and return."""

    def __init__(self, model, monkeypatch):
        self.seen = {}
        modules = dict(model.named_modules())
        for name in FLOAT32_LAYERS:
            modules[name].register_forward_hook(self._output_hook(name))
        for name in ("backbone", *BF16_LAYERS):
            modules[name].register_forward_hook(self._output_hook(name))
        for module in modules.values():
            if isinstance(module, torch.nn.GroupNorm):  # what it receives, before the model's own hook casts it
                module.register_forward_pre_hook(self._group_norm_input, prepend=True)
                module.register_forward_hook(self._group_norm_output)
        for pooler in ("box_pooler", "mask_pooler", "keypoint_pooler"):
            getattr(model.roi_heads, pooler).register_forward_pre_hook(self._boxes_hook(pooler))
        nms = torchvision.ops.boxes.nms

        def recording_nms(boxes, scores, iou_threshold):
            self.seen.setdefault("nms", set()).add((boxes.dtype, scores.dtype))
            return nms(boxes, scores, iou_threshold)

        monkeypatch.setattr(torchvision.ops.boxes, "nms", recording_nms)

    def _output_hook(self, name):
        def hook(module, inputs, output):
            tensors = list(output.values()) if isinstance(output, dict) else output
            tensors = [t for part in tensors for t in (part if isinstance(part, (list, tuple)) else [part])]
            self.seen[name] = {t.dtype for t in tensors}
            if name == "backbone":
                self.seen["backbone_channels_last"] = all(
                    t.is_contiguous(memory_format=torch.channels_last) for t in tensors
                )

        return hook

    def _group_norm_input(self, module, inputs):
        self.seen.setdefault("group_norm_input", set()).add(inputs[0].dtype)

    def _group_norm_output(self, module, inputs, output):
        self.seen.setdefault("group_norm_output", set()).add(output.dtype)

    def _boxes_hook(self, name):
        def hook(module, inputs):
            self.seen[name] = {boxes.tensor.dtype for boxes in inputs[1]}
            self.seen[f"{name}_features"] = {(f.dtype, f.is_contiguous()) for f in inputs[0]}

        return hook


def assert_computed_in_bf16(seen: dict) -> None:
    """Convolutions and fc layers ran in bf16; GroupNorm took their bf16 output and normalised in float32;
    the poolers read the bf16 channels-last features as float32 contiguous copies."""
    for name in BF16_LAYERS:
        assert seen[name] == {torch.bfloat16}, name
    assert seen["group_norm_input"] == {torch.bfloat16} and seen["group_norm_output"] == {torch.float32}
    for pooler in ("box_pooler", "mask_pooler", "keypoint_pooler"):
        assert seen[f"{pooler}_features"] == {(torch.float32, True)}, pooler


def test_bf16_inference_decodes_and_returns_float32(bf16_cfg, batch, monkeypatch):
    torch.manual_seed(0)
    model = build_model(bf16_cfg).eval()
    recorder = DtypeRecorder(model, monkeypatch)
    inputs = [{"image": item["image"], "height": 160, "width": 200} for item in batch]
    with torch.no_grad():
        raw = model.inference(inputs, do_postprocess=False)
        outputs = model(inputs)
    seen = recorder.seen
    assert_computed_in_bf16(seen)
    assert seen["backbone_channels_last"]
    for name in FLOAT32_LAYERS:  # logits and deltas
        assert seen[name] == {torch.float32}, name
    for pooler in ("box_pooler", "mask_pooler", "keypoint_pooler"):  # RoI coordinates
        assert seen[pooler] == {torch.float32}, pooler
    assert seen["nms"] == {(torch.float32, torch.float32)}
    for per_image in raw:  # what is pasted and decoded
        assert per_image.pred_masks.dtype == per_image.scores.dtype == torch.float32
        assert per_image.pred_keypoints.dtype == per_image.pred_keypoint_heatmaps.dtype == torch.float32
    for output in outputs:
        instances = output["instances"]
        assert len(instances) > 0
        assert instances.pred_boxes.tensor.dtype == instances.scores.dtype == torch.float32
        assert instances.pred_keypoints.dtype == torch.float32 and instances.pred_masks.dtype == torch.bool
        assert instances.pred_masks.shape[1:] == (160, 200)


def test_bf16_training_losses_are_float32_and_reach_every_weight(bf16_cfg, batch, monkeypatch):
    torch.manual_seed(0)
    model = build_model(bf16_cfg).train()
    recorder = DtypeRecorder(model, monkeypatch)
    with EventStorage():
        losses = model(batch)
    assert_computed_in_bf16(recorder.seen)
    assert set(losses) == {
        "loss_cls",
        "loss_box_reg",
        "loss_mask",
        "loss_keypoint",
        "loss_rpn_cls",
        "loss_rpn_loc",
    }
    for name, loss in losses.items():
        assert loss.dtype == torch.float32 and torch.isfinite(loss), name
    sum(losses.values()).backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and parameter.grad.dtype == torch.float32, name
