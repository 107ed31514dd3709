"""The precision and memory format a model computes in: MASK_RCNN_EXT.PRECISION.TRAIN / .TEST and
.MEMORY_FORMAT, what they resolve to on a device, and the autocast around a forward pass.

Precision settings (one for training, one for inference):
  "fp32": float32 throughout, detectron2's computation bit for bit (with MEMORY_FORMAT "auto").
  "bf16", "fp16": `torch.autocast` to that dtype: convolutions and fc layers in it, the rest as
      autocast decides; `MaskRCNN` keeps in float32 what decodes, samples or compares.
  "auto": the fastest choice that keeps the accuracy, logged with its reason:
      CPU: bf16 where the CPU computes bf16 natively (AMX or AVX-512 BF16); fp32 elsewhere, since
          emulated bf16 is slower than fp32 (never chosen by accident);
      CUDA, training: bf16 from compute capability 8.0 (no loss scaling needed), fp16 on 7.x
          (tensor cores; the trainer scales the loss), fp32 before;
      CUDA, inference: fp16 from 7.0 (tensor cores; 3 more mantissa bits than bf16), fp32 before.
Memory format ("auto", "channels_last", "contiguous"), the layout of the input images and so of
every convolution's output: "auto" is channels-last where the precision is reduced (what oneDNN's
bf16 and cuDNN's tensor-core kernels run fastest on) or where "auto" precision runs a CPU in fp32,
and contiguous for an explicit "fp32", which stays detectron2's computation.
"""

import contextlib
import dataclasses
from contextlib import AbstractContextManager
from typing import Any, Optional

import torch

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}


@dataclasses.dataclass(frozen=True)
class Precision:
    """What a setting resolved to on one device: the autocast dtype (float32: none), the layout of
    the input images, and why."""

    dtype: torch.dtype
    channels_last: bool
    reason: str

    @property
    def name(self) -> str:
        return DTYPE_NAMES[self.dtype]

    def autocast(self, device_type: str) -> AbstractContextManager:
        """torch.autocast to `dtype` on `device_type`; for float32 no context at all, so that an
        outer autocast (detectron2's SOLVER.AMP) is not switched off."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=self.dtype)

    def describe(self) -> str:
        return f"{self.name}, {'channels-last' if self.channels_last else 'contiguous'} ({self.reason})"


def cpu_native_reduced_dtypes() -> tuple[frozenset, str]:
    """The reduced dtypes this CPU computes natively (bfloat16 with AMX or AVX-512 BF16, float16
    with AMX-FP16), and the instruction sets found. torch tells through `torch.cpu`'s probes; a
    torch without them is taken to say none."""
    probes = {
        "AMX-BF16": "_is_amx_tile_supported",
        "AVX-512 BF16": "_is_avx512_bf16_supported",
        "AMX-FP16": "_is_amx_fp16_supported",
    }
    found = [isa for isa, probe in probes.items() if getattr(torch.cpu, probe, lambda: False)()]
    dtypes = set()
    if "AMX-BF16" in found or "AVX-512 BF16" in found:
        dtypes.add(torch.bfloat16)
    if "AMX-FP16" in found:
        dtypes.add(torch.float16)
    capability = torch.backends.cpu.get_cpu_capability()
    return frozenset(dtypes), ", ".join(found) if found else f"{capability} only"


def cuda_capability(device: torch.device) -> tuple[int, int]:
    return torch.cuda.get_device_capability(device)


def resolve_precision(setting: str, memory_format: str, device: torch.device, training: bool) -> Precision:
    """The Precision `setting` (one of PRECISIONS) and `memory_format` (one of MEMORY_FORMATS)
    give for training or inference on `device`. An explicit reduced dtype the device does not
    compute natively is kept, with a warning in its reason."""
    if setting not in PRECISIONS:
        raise ValueError(f"precision {setting!r}: expected one of {', '.join(PRECISIONS)}")
    if memory_format not in MEMORY_FORMATS:
        raise ValueError(f"memory format {memory_format!r}: expected one of {', '.join(MEMORY_FORMATS)}")
    if device.type == "cuda":
        dtype, reason = _resolve_cuda(setting, cuda_capability(device), training)
    elif device.type == "cpu":
        dtype, reason = _resolve_cpu(setting)
    else:
        dtype, reason = torch.float32, f"{device.type}: only fp32 is supported here"
        if setting not in ("fp32", "auto"):
            raise ValueError(f"precision {setting!r} on {device.type}: only fp32 or auto are supported there")
    if memory_format == "auto":
        channels_last = dtype != torch.float32 or (setting == "auto" and device.type == "cpu")
    else:
        channels_last = memory_format == "channels_last"
    return Precision(dtype, channels_last, reason)


def _resolve_cpu(setting: str) -> tuple[torch.dtype, str]:
    native, found = cpu_native_reduced_dtypes()
    if setting == "auto":
        if torch.bfloat16 in native:
            return torch.bfloat16, f"auto: this CPU computes bf16 natively ({found})"
        return torch.float32, f"auto: this CPU has no native bf16 ({found}); emulated bf16 is slower than fp32"
    dtype = DTYPES[setting]
    if dtype != torch.float32 and dtype not in native:
        return dtype, f"as set; WARNING: this CPU has no native {setting} ({found}): emulated, slower than fp32"
    return dtype, "as set"


def _resolve_cuda(setting: str, capability: tuple[int, int], training: bool) -> tuple[torch.dtype, str]:
    gpu = f"compute capability {capability[0]}.{capability[1]}"
    if setting == "auto":
        if training and capability >= (8, 0):
            return torch.bfloat16, f"auto: {gpu} computes bf16 natively; training needs no loss scaling in it"
        if capability >= (7, 0):
            return torch.float16, f"auto: {gpu} has fp16 tensor cores"
        return torch.float32, f"auto: {gpu} has no tensor cores"
    if setting == "bf16" and capability < (8, 0):
        return torch.bfloat16, f"as set; WARNING: {gpu} has no native bf16 (8.0 and later do), so it is emulated"
    return DTYPES[setting], "as set"


def to_float32(value: Any) -> Any:
    """`value` with every floating tensor in it (alone, or in lists and tuples) cast to float32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(to_float32(v) for v in value)
    return value


class Float32Island:
    """Forward hooks that run a module outside autocast, on its inputs cast to float32; where no
    autocast is on they do nothing.

    For the layers whose outputs are read as numbers rather than passed on: class and objectness
    logits that are ranked and thresholded, box deltas that are decoded, heatmap logits whose
    maximum locates a keypoint. In bf16 (8 significant bits) a logit of 16 has steps of 0.125.
    And for GroupNorm, which CUDA's autocast runs in float32 and CPU's in bf16.
    """

    def __init__(self):
        self._contexts: list[Optional[AbstractContextManager]] = []  # one per call in progress (re-entrant)

    @classmethod
    def attach(cls, module: torch.nn.Module) -> None:
        island = cls()
        module.register_forward_pre_hook(island._enter)
        module.register_forward_hook(island._exit, always_call=True)

    def _enter(self, module: torch.nn.Module, args: tuple) -> Optional[tuple]:
        # the device of the inputs: a module may have no parameters (GroupNorm without affine weights)
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        device_type = tensors[0].device.type if tensors else None
        if device_type is None or not torch.is_autocast_enabled(device_type):
            self._contexts.append(None)
            return None
        context = torch.autocast(device_type, enabled=False)
        context.__enter__()
        self._contexts.append(context)
        return to_float32(args)

    def _exit(self, module: torch.nn.Module, args: tuple, output: Any) -> None:
        context = self._contexts.pop()
        if context is not None:
            context.__exit__(None, None, None)


def precision_config_errors(cfg) -> list[str]:
    """Messages naming the MASK_RCNN_EXT.PRECISION keys that are invalid or clash with another key."""
    node, errors = cfg.MASK_RCNN_EXT.PRECISION, []
    for key in ("TRAIN", "TEST"):
        if node[key] not in PRECISIONS:
            errors.append(f"MASK_RCNN_EXT.PRECISION.{key}={node[key]!r}: expected one of {', '.join(PRECISIONS)}")
    if node.MEMORY_FORMAT not in MEMORY_FORMATS:
        errors.append(
            f"MASK_RCNN_EXT.PRECISION.MEMORY_FORMAT={node.MEMORY_FORMAT!r}: expected one of {', '.join(MEMORY_FORMATS)}"
        )
    default = (node.TRAIN, node.TEST, node.MEMORY_FORMAT) == ("fp32", "fp32", "auto")
    if not default and cfg.MODEL.META_ARCHITECTURE != "MaskRCNN":
        errors.append(
            "MASK_RCNN_EXT.PRECISION is read by the MaskRCNN meta-architecture; "
            f"MODEL.META_ARCHITECTURE='{cfg.MODEL.META_ARCHITECTURE}' would ignore it"
        )
    if cfg.SOLVER.AMP.ENABLED and node.TRAIN != "fp32":
        errors.append(
            f"SOLVER.AMP.ENABLED=True (detectron2's fp16 training on CUDA) and MASK_RCNN_EXT.PRECISION.TRAIN="
            f"{node.TRAIN!r} both set the training precision: set one"
        )
    if node.TRAIN == "fp16" and cfg.MODEL.DEVICE.startswith("cpu"):
        errors.append(
            "MASK_RCNN_EXT.PRECISION.TRAIN='fp16' on MODEL.DEVICE='cpu': fp16 training needs loss scaling, "
            "which detectron2's trainer does on CUDA only; use bf16 on the CPU"
        )
    return errors
