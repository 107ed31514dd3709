#!/usr/bin/env python
"""Make `import detectron2` work in this Python environment, by the first route that applies.

1. A detectron2 that is already importable is used as it is (e.g. a CUDA build the user made).
2. A source the user names (``--source`` or ``$DETECTRON2_SOURCE``) is installed with pip:
   a source checkout, a ``git+https://...`` URL, or a wheel. This is the normal route on a
   machine that reaches GitHub and has CUDA; it gives the full build with the C++/CUDA ops.
3. Otherwise detectron2 v0.6 is built from the only copy the package registries hold, the sdist
   ``pb1-detectron2==0.6``. That sdist lacks the C++/CUDA sources and predates Python 3.11,
   NumPy 2, Pillow 10 and setuptools 81, so this program verifies its sha256, applies the
   small source transformations listed in ``SDIST_FIXES`` (each must match exactly as often as
   expected, or the build stops), and installs the result as a real distribution named
   ``detectron2`` (a wheel, not an import hook), so every process can import it.

Ops that need the missing extension (rotated boxes, deformable convolution, the fast COCO
evaluator) raise an ImportError that says how to get a full build. Mask R-CNN and Keypoint
R-CNN need none of them: RoIAlign, RoIPool and NMS come from torchvision.

Run with the Python of the environment to install into (the Makefile uses .venv/bin/python).
"""

import argparse
import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SDIST_NAME = "pb1-detectron2"
SDIST_VERSION = "0.6"
SDIST_FILE = f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
# Local version label of our build: `pip list` shows `detectron2 0.6+sdist.noext`, which tells
# a user (and bug reports) that this is the registry sdist without the C++/CUDA extension.
BUILD_VERSION_SUFFIX = "+sdist.noext"

FULL_BUILD_HINT = (
    "pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git' "
    "(or `make setup DETECTRON2_SOURCE=<checkout, git URL or wheel>`; see README, 'Install routes')"
)

# Module added to the built package: stands in for `detectron2._C` in the modules that imported
# it at import time, so that `import detectron2.modeling` works and only the ops that really
# need the extension fail, with instructions.
EXTENSION_STANDIN = f'''"""Stand-in for detectron2's compiled extension (added by mask_rcnn_ext's installer).

This detectron2 was built from the `{SDIST_NAME}=={SDIST_VERSION}` sdist, which lacks the C++/CUDA
sources. Attribute access imports the real `detectron2._C` if one exists, else raises ImportError.
"""
import importlib


class _ExtensionStandIn:
    def __getattr__(self, op_name):
        try:
            extension = importlib.import_module("detectron2._C")
        except ImportError as e:
            raise ImportError(
                f"detectron2 op `{{op_name}}` needs detectron2's compiled C++/CUDA extension, "
                "which this build of detectron2 (from the registry sdist, without C++ sources) "
                "does not have. Rotated boxes, deformable convolution and the fast COCO evaluator "
                "need it; Mask R-CNN and keypoint R-CNN do not. For a full build: "
                "{FULL_BUILD_HINT}"
            ) from e
        return getattr(extension, op_name)


_C = _ExtensionStandIn()
'''


@dataclasses.dataclass(frozen=True)
class SourceFix:
    """Replace every match of `pattern` in `path` with `replacement`; exactly `count` must match."""

    path: str
    pattern: str
    replacement: str
    count: int
    why: str


_NUMPY_ALIAS = r"\bnp\.(bool|int|float|str)\b(?![_\d])"
_IMPORT_EXTENSION = r"^from detectron2 import _C$"

SDIST_FIXES: list[SourceFix] = [
    SourceFix(
        "setup.py",
        r'name="pb1-detectron2"',
        'name="detectron2"',
        1,
        "install as the distribution everyone imports and pip-checks: detectron2",
    ),
    SourceFix(
        "setup.py",
        r"ext_modules=get_extensions\(\),",
        "ext_modules=[],",
        1,
        "the sdist has no C++/CUDA sources to compile",
    ),
    SourceFix(
        "setup.py",
        r'"black==21\.4b2"',
        '"black"',
        1,
        "black 21.4b2 breaks with current click; upstream main dropped the pin",
    ),
    SourceFix(
        "setup.py",
        r"get_model_zoo_configs\(\)\}",
        '["configs/**/*.yaml", "configs/**/*.py"]}',
        1,
        "the sdist's config glob looks outside the package, so the wheel lacked model_zoo/configs",
    ),
    *[
        SourceFix(
            path,
            _IMPORT_EXTENSION,
            "from detectron2._extension import _C",
            1,
            "import-time extension import; the stand-in defers it to the op call",
        )
        for path in (
            "detectron2/layers/deform_conv.py",
            "detectron2/layers/rotated_boxes.py",
            "detectron2/layers/roi_align_rotated.py",
            "detectron2/evaluation/fast_eval_api.py",
        )
    ],
    SourceFix(
        "detectron2/data/transforms/transform.py",
        r"\bImage\.LINEAR\b",
        "Image.BILINEAR",
        1,
        "Pillow 10 removed the LINEAR alias of BILINEAR",
    ),
    *[
        SourceFix(path, _NUMPY_ALIAS, r"\1", count, "NumPy 1.24 removed the builtin-type aliases")
        for path, count in (
            ("detectron2/evaluation/pascal_voc_evaluation.py", 2),
            ("detectron2/evaluation/sem_seg_evaluation.py", 7),
            ("detectron2/structures/masks.py", 3),
            ("detectron2/data/datasets/pascal_voc.py", 1),
            ("detectron2/data/build.py", 2),
            ("detectron2/utils/visualizer.py", 3),
            ("detectron2/utils/video_visualizer.py", 1),
        )
    ],
    SourceFix(
        "detectron2/layers/mask_ops.py",
        r"np\.array\(mask, copy=False\)",
        "np.asarray(mask)",
        1,
        "NumPy 2 raises when copy=False cannot avoid a copy (PIL image -> array)",
    ),
    SourceFix(
        "detectron2/model_zoo/model_zoo.py", r"^import pkg_resources\n", "", 1, "setuptools 81 removed pkg_resources"
    ),
    SourceFix(
        "detectron2/model_zoo/model_zoo.py",
        r'pkg_resources\.resource_filename\(\s*"detectron2\.model_zoo",',
        "os.path.join(os.path.dirname(os.path.abspath(__file__)),",
        1,
        "the model-zoo configs are installed beside model_zoo.py",
    ),
    SourceFix(
        "detectron2/export/__init__.py",
        r"^from \.api import \*$",
        "try:\n    from .api import *\nexcept ImportError:  # caffe2 export needs caffe2, gone from torch 2\n    pass",
        1,
        "keep TracingAdapter and torchscript export (used by utils.analysis) importable",
    ),
    SourceFix(
        "detectron2/engine/launch.py",
        r"assert torch\.cuda\.is_available\(\), [^\n]*",
        "has_gpu = torch.cuda.is_available()",
        1,
        "multi-process training on CPU: fall back to GLOO as upstream main does",
    ),
    SourceFix(
        "detectron2/engine/launch.py", r'backend="NCCL",', 'backend="NCCL" if has_gpu else "GLOO",', 1, "as above"
    ),
    SourceFix(
        "detectron2/engine/launch.py",
        r"(\n    )(assert num_gpus_per_machine <= torch\.cuda\.device_count\(\))"
        r"(\n    )(torch\.cuda\.set_device\(local_rank\))",
        r"\1if has_gpu:\1    \2\3    \4",
        1,
        "as above",
    ),
]


def log(message: str) -> None:
    print(f"[install_detectron2] {message}", flush=True)


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", *args]
    log(" ".join(command))
    subprocess.run(command, check=True)


def importable_detectron2() -> str:
    """Return 'version at path' of the detectron2 this Python imports, or '' if there is none.

    Checked in a fresh interpreter so that a half-installed package cached in this one can't
    fool it."""
    probe = "import detectron2, os; print(detectron2.__version__, 'at', os.path.dirname(detectron2.__file__))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_verified_sdist(cache_dir: Path) -> Path:
    """Download the sdist into `cache_dir` (once) and check it is the one the fixes were made for."""
    sdist = cache_dir / SDIST_FILE
    if not sdist.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        # setup.py of the sdist imports torch even to report metadata, hence no build isolation.
        # pip >= 26 refuses this sdist's metadata (a direct-URL extra), so the Makefile pins pip.
        pip("download", "--no-deps", "--no-build-isolation", "--dest", str(cache_dir), f"{SDIST_NAME}=={SDIST_VERSION}")
    actual = sha256_of(sdist)
    if actual != SDIST_SHA256:
        raise SystemExit(
            f"{sdist} has sha256 {actual}, expected {SDIST_SHA256}: not the sdist this installer "
            "knows how to fix. Delete it to download again, or install detectron2 yourself "
            f"({FULL_BUILD_HINT})."
        )
    return sdist


def apply_fixes(source_root: Path, fixes: list[SourceFix]) -> None:
    """Apply `fixes` to the unpacked sdist in place; stop at the first that does not match as expected."""
    for fix in fixes:
        path = source_root / fix.path
        text = path.read_text()
        new_text, matches = re.subn(fix.pattern, fix.replacement, text, flags=re.MULTILINE)
        if matches != fix.count:
            raise SystemExit(
                f"{fix.path}: pattern {fix.pattern!r} matched {matches} times, expected {fix.count} "
                f"({fix.why}). The sdist is not the one these fixes were written for."
            )
        path.write_text(new_text)
    (source_root / "detectron2" / "_extension.py").write_text(EXTENSION_STANDIN)


def build_wheel_from_sdist(cache_dir: Path) -> Path:
    """Return the fixed detectron2 wheel, building it from the verified sdist if not cached."""
    # Keyed by the fixes, so that editing them rebuilds instead of reusing a stale wheel.
    fixes_digest = hashlib.sha256(repr((SDIST_FIXES, EXTENSION_STANDIN)).encode()).hexdigest()[:12]
    wheel_dir = cache_dir / f"wheels-{fixes_digest}"
    wheels = sorted(wheel_dir.glob("detectron2-*.whl"))
    if wheels:
        return wheels[-1]
    sdist = fetch_verified_sdist(cache_dir)
    with tempfile.TemporaryDirectory(prefix="detectron2-build-") as tmp:
        with tarfile.open(sdist) as archive:
            archive.extractall(tmp, filter="data")
        source_root = Path(tmp) / f"{SDIST_NAME}-{SDIST_VERSION}"
        # The sdist's own egg-info names the old distribution; setuptools would reuse it.
        shutil.rmtree(source_root / f"{SDIST_NAME.replace('-', '_')}.egg-info")
        apply_fixes(source_root, SDIST_FIXES)
        os.environ["D2_VERSION_SUFFIX"] = BUILD_VERSION_SUFFIX
        pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheel_dir), str(source_root))
    return sorted(wheel_dir.glob("detectron2-*.whl"))[-1]


def check_imports() -> None:
    """The acceptance check: detectron2's main modules import in a fresh process, without our plugin."""
    modules = "detectron2.modeling, detectron2.data, detectron2.evaluation, detectron2.utils.visualizer"
    subprocess.run([sys.executable, "-c", f"import {modules}"], check=True)
    log(f"ok: import {modules}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--source",
        default=os.environ.get("DETECTRON2_SOURCE", ""),
        help="detectron2 to install instead of the registry sdist: a source checkout, "
        "a git+https URL or a wheel (default: $DETECTRON2_SOURCE)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(".cache/detectron2"),
        help="where the verified sdist and the built wheel are kept",
    )
    args = parser.parse_args()

    found = importable_detectron2()
    if found:
        log(f"using the detectron2 already importable here: {found}")
        if args.source:
            log(f"not installing {args.source}: `pip uninstall detectron2` first to replace it")
    elif args.source:
        # A source build compiles the extension against the installed torch: no isolation.
        pip("install", "--no-build-isolation", args.source)
    else:
        log(f"building detectron2 from the registry sdist {SDIST_FILE} (no C++/CUDA extension)")
        pip("install", "--no-deps", "--force-reinstall", str(build_wheel_from_sdist(args.cache_dir)))
    check_imports()


if __name__ == "__main__":
    main()
