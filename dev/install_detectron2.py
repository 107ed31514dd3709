#!/usr/bin/env python
"""Make `import detectron2` work in this Python environment, by the first route that applies.

1. A detectron2 that is already importable is used as it is (e.g. a CUDA build the user made).
2. A source the user names (``--source`` or ``$DETECTRON2_SOURCE``). This is the normal route on a
   machine that reaches GitHub and has CUDA; it gives the full build with the C++/CUDA ops.

   - A source checkout (a directory with ``setup.py`` and ``detectron2/``) is copied to a
     temporary directory (without ``.git``, ``build/``, ``dist/``, ``*.egg-info``), the copy gets
     the fixes listed in ``SOURCE_FIXES``, and pip builds and installs the copy
     (``pip install --no-build-isolation``: the extension is compiled against the installed
     torch). The checkout itself is never written to. Upstream may already have made a fix, so
     each of these fixes accepts a count of 0 as well as the count it was written for; any other
     count stops the install, and so does a use of what the fixes remove (``SOURCE_LEFTOVERS``)
     still present in ``detectron2/`` afterwards. If any fix applied, the version gets the local
     label ``+srcfix`` (``pip list`` shows e.g. ``detectron2 0.6+srcfix``).
     Today (detectron2 main, June 2026) that is one thing: ``model_zoo/model_zoo.py`` imports
     ``pkg_resources``, which setuptools >= 81 (the lock's 84.x) no longer ships; the fixes
     replace ``pkg_resources.resource_filename`` with ``importlib.resources``.
   - A ``git+<scheme>://...[@ref]`` URL (pip's syntax; ``#egg=...`` is ignored) is fetched with
     ``git fetch --depth 1`` (a branch, tag or commit; the default branch without ``@ref``) into
     a temporary directory, then treated as a checkout.
   - A wheel (a ``.whl`` path, or a URL that pip downloads) is installed as it is: it is already
     built and can't be fixed without rebuilding it. Its files are checked against
     ``SOURCE_FIXES`` first, and a wheel that still needs one is refused before anything is
     installed, with the hint to name its source checkout or git URL instead.
3. Otherwise detectron2 v0.6 is built from the only copy the package registries hold, the sdist
   ``pb1-detectron2==0.6``. That sdist lacks the C++/CUDA sources and predates Python 3.11,
   NumPy 2, Pillow 10 and setuptools 81, so this program verifies its sha256, applies the
   small source transformations listed in ``SDIST_FIXES`` (each must match exactly as often as
   expected, or the build stops), and installs the result as a real distribution named
   ``detectron2`` (a wheel, not an import hook), so every process can import it.

Whatever the route, the install ends with an acceptance check in a fresh process: detectron2's
main modules import and ``model_zoo.get_config_file`` finds a config. If it fails, the program
stops with what failed and what to do (for route 1: uninstall that detectron2 and set up again).

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
import urllib.parse
import zipfile
from pathlib import Path

SDIST_NAME = "pb1-detectron2"
SDIST_VERSION = "0.6"
SDIST_FILE = f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
# Local version label of our build: `pip list` shows `detectron2 0.6+sdist.noext`, which tells
# a user (and bug reports) that this is the registry sdist without the C++/CUDA extension.
BUILD_VERSION_SUFFIX = "+sdist.noext"
# Local version label of a build from a named source that needed some of SOURCE_FIXES.
SOURCE_VERSION_SUFFIX = "+srcfix"
# The acceptance check of every route, run in a fresh process without our plugin.
ACCEPTANCE_CHECK = (
    "import detectron2.modeling, detectron2.data, detectron2.evaluation, detectron2.utils.visualizer\n"
    "from detectron2 import model_zoo\n"
    "model_zoo.get_config_file('COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml')"
)

FULL_BUILD_HINT = (
    "pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git' "
    "(or `make setup DETECTRON2_SOURCE=<checkout, git URL or wheel>`; see docs/install.md)"
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
    """Replace every match of `pattern` (a multi-line regex) in `path` with `replacement`.

    `count` is how many matches the source must have: an int (exactly that many) or a tuple of the
    counts accepted, e.g. `(0, 1)` for a fix upstream may already have made. Any other count stops
    the build: the source is not the one the fix was written for."""

    path: str
    pattern: str
    replacement: str
    count: int | tuple[int, ...]
    why: str

    @property
    def expected_counts(self) -> tuple[int, ...]:
        return self.count if isinstance(self.count, tuple) else (self.count,)

    def describe_expected(self) -> str:
        return " or ".join(str(n) for n in self.expected_counts)


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


# The fixes a detectron2 named by --source/$DETECTRON2_SOURCE gets (a checkout or git URL; a wheel is
# checked against them). Only what that source needs on the locked stack: upstream main (June 2026)
# needs these and nothing else of SDIST_FIXES (its extension imports are lazy, its launcher falls back
# to GLOO, it has no removed NumPy/Pillow aliases). Each accepts 0 matches (count "0 or 1"): upstream
# may fix it; SOURCE_LEFTOVERS then makes sure nothing of what it fixes is left.
SOURCE_FIXES: list[SourceFix] = [
    SourceFix(
        "detectron2/model_zoo/model_zoo.py",
        r"^import pkg_resources$",
        "import importlib.resources",
        (0, 1),
        "setuptools 81 removed pkg_resources",
    ),
    SourceFix(
        "detectron2/model_zoo/model_zoo.py",
        r'pkg_resources\.resource_filename\(\s*"detectron2\.model_zoo",'
        r'\s*(os\.path\.join\("configs", config_path\)),?\s*\)',
        r'str(importlib.resources.files("detectron2.model_zoo").joinpath(\1))',
        (0, 1),
        "setuptools 81 removed pkg_resources; importlib.resources finds the model-zoo configs, package data",
    ),
]

# What SOURCE_FIXES remove: none of it may be left in detectron2/*.py once they are applied (else
# upstream changed the code around it and a fix matched 0 times where it should have matched).
SOURCE_LEFTOVERS: list[tuple[str, str]] = [
    (r"^\s*(?:import|from)\s+pkg_resources\b|\bpkg_resources\.", "setuptools 81 removed pkg_resources"),
]


def log(message: str) -> None:
    print(f"[install_detectron2] {message}", flush=True)


def pip(*args: str, env: dict[str, str] | None = None) -> None:
    command = [sys.executable, "-m", "pip", *args]
    log(" ".join(command))
    subprocess.run(command, check=True, env=None if env is None else {**os.environ, **env})


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


def apply_fixes(source_root: Path, fixes: list[SourceFix], source_name: str = "The sdist") -> int:
    """Apply `fixes` to the source tree in place; stop at the first that does not match as expected.

    Returns how many of them changed something (matched more than 0 times)."""
    applied = 0
    for fix in fixes:
        path = source_root / fix.path
        if not path.is_file():
            raise SystemExit(
                f"{fix.path}: not found ({fix.why}). {source_name} is not a source these fixes were written for."
            )
        text = path.read_text()
        new_text, matches = re.subn(fix.pattern, fix.replacement, text, flags=re.MULTILINE)
        if matches not in fix.expected_counts:
            raise SystemExit(
                f"{fix.path}: pattern {fix.pattern!r} matched {matches} times, expected {fix.describe_expected()} "
                f"({fix.why}). {source_name} is not a source these fixes were written for."
            )
        log(f"{fix.path}: {matches} x {fix.why}")
        if matches:
            path.write_text(new_text)
            applied += 1
    return applied


def find_leftovers(package_dir: Path, leftovers: list[tuple[str, str]]) -> list[str]:
    """'file:line: why' for every match of a `leftovers` pattern in the package's Python files."""
    found = []
    for file in sorted(package_dir.rglob("*.py")):
        text = file.read_text(errors="replace")
        for pattern, why in leftovers:
            for match in re.finditer(pattern, text, flags=re.MULTILINE):
                line = text.count("\n", 0, match.start()) + 1
                code = text.splitlines()[line - 1].strip()
                found.append(f"{file.relative_to(package_dir.parent)}:{line}: {code!r} ({why})")
    return found


def fix_source(source_root: Path, source_name: str) -> int:
    """Apply SOURCE_FIXES to a detectron2 source tree and refuse one that still has SOURCE_LEFTOVERS."""
    applied = apply_fixes(source_root, SOURCE_FIXES, source_name)
    leftovers = find_leftovers(source_root / "detectron2", SOURCE_LEFTOVERS)
    if leftovers:
        raise SystemExit(
            f"{source_name} still has code that does not work on this stack after SOURCE_FIXES "
            "(upstream changed it; add or adjust a SourceFix in dev/install_detectron2.py):\n  "
            + "\n  ".join(leftovers)
        )
    return applied


def copy_checkout(checkout: Path, dest: Path) -> None:
    """Copy a detectron2 source checkout, without its git data and build outputs, to `dest`."""
    if not (checkout / "setup.py").is_file() or not (checkout / "detectron2" / "__init__.py").is_file():
        raise SystemExit(f"{checkout}: not a detectron2 source checkout (no setup.py and detectron2/__init__.py)")

    def ignore(directory: str, names: list[str]) -> set[str]:
        top_level = {".git", "build", "dist"} if Path(directory) == checkout else set()
        return {n for n in names if n in top_level or n == "__pycache__" or n.endswith(".egg-info")}

    shutil.copytree(checkout, dest, symlinks=True, ignore=ignore)


def parse_git_url(source: str) -> tuple[str, str | None]:
    """pip's `git+<url>[@ref][#fragment]` syntax -> (url for git, ref or None)."""
    url = source.removeprefix("git+").split("#", 1)[0]
    scheme, netloc, path, query, _ = urllib.parse.urlsplit(url)
    ref = None
    if "@" in path:
        path, ref = path.rsplit("@", 1)
    if not scheme or not path or ref == "":
        raise SystemExit(f"{source}: not a git URL of the form git+https://host/repo.git[@ref]")
    return urllib.parse.urlunsplit((scheme, netloc, path, query, "")), ref


def fetch_git_source(source: str, dest: Path) -> None:
    """Shallow-fetch the commit a `git+...` URL names (its default branch without @ref) into `dest`."""
    url, ref = parse_git_url(source)
    commands = [
        ["git", "init", "--quiet", str(dest)],
        ["git", "-C", str(dest), "fetch", "--quiet", "--depth", "1", url, ref or "HEAD"],
        ["git", "-C", str(dest), "checkout", "--quiet", "--detach", "FETCH_HEAD"],
    ]
    for command in commands:
        log(" ".join(command))
        try:
            subprocess.run(command, check=True)
        except (OSError, subprocess.CalledProcessError) as error:
            raise SystemExit(
                f"could not fetch {source}: {error}. If this machine cannot reach it, clone it where you can "
                "and name the checkout: DETECTRON2_SOURCE=<checkout directory>."
            ) from error


def source_kind(source: str) -> str:
    """'git', 'wheel' or 'checkout'; anything else is refused."""
    if source.startswith("git+"):
        return "git"
    if source.endswith(".whl"):
        return "wheel"
    if Path(source).is_dir():
        return "checkout"
    raise SystemExit(
        f"DETECTRON2_SOURCE={source!r}: expected a detectron2 source checkout (a directory), "
        "a git+https://... URL or a wheel (.whl)"
    )


def install_from_source(source: str) -> None:
    """Fix a checkout or git URL's sources in a temporary copy and install that copy."""
    with tempfile.TemporaryDirectory(prefix="detectron2-source-") as tmp:
        source_root = Path(tmp) / "detectron2-source"
        if source_kind(source) == "git":
            fetch_git_source(source, source_root)
            shutil.rmtree(source_root / ".git")
        else:
            copy_checkout(Path(source).expanduser().resolve(), source_root)
        applied = fix_source(source_root, f"detectron2 from {source}")
        env = {"D2_VERSION_SUFFIX": SOURCE_VERSION_SUFFIX} if applied else {}
        log(f"installing detectron2 from a copy of {source} with {applied} of SOURCE_FIXES applied")
        # A source build compiles the extension against the installed torch: no isolation.
        pip("install", "--no-build-isolation", str(source_root), env=env)


def wheel_needs_fixes(wheel: Path, fixes: list[SourceFix]) -> list[str]:
    """The `fixes` that would change a file of `wheel` (a wheel holds the package at the top, as a checkout does)."""
    needed = []
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for fix in fixes:
            if fix.path in names:
                text = archive.read(fix.path).decode(errors="replace")
                if re.search(fix.pattern, text, flags=re.MULTILINE):
                    needed.append(f"{fix.path}: {fix.why}")
    return needed


def install_wheel(source: str) -> None:
    """Install a wheel as it is, unless it still needs one of SOURCE_FIXES (then nothing is installed)."""
    with tempfile.TemporaryDirectory(prefix="detectron2-wheel-") as tmp:
        wheel = Path(source).expanduser()
        if not wheel.is_file():
            if "://" not in source:
                raise SystemExit(f"{source}: no such wheel")
            pip("download", "--no-deps", "--dest", tmp, source)
            wheel = next(Path(tmp).glob("*.whl"))
        needed = wheel_needs_fixes(wheel, SOURCE_FIXES)
        if needed:
            raise SystemExit(
                f"{source} is a built detectron2 that does not work on this stack, and a wheel is installed as it is:"
                "\n  " + "\n  ".join(needed) + "\nName its source instead (DETECTRON2_SOURCE=<checkout directory> "
                "or git+https://...@<ref>): the installer fixes sources before building them."
            )
        pip("install", str(wheel))


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
        (source_root / "detectron2" / "_extension.py").write_text(EXTENSION_STANDIN)
        pip(
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(wheel_dir),
            str(source_root),
            env={"D2_VERSION_SUFFIX": BUILD_VERSION_SUFFIX},
        )
    return sorted(wheel_dir.glob("detectron2-*.whl"))[-1]


def check_imports(hint: str) -> None:
    """The acceptance check: detectron2's main modules import and its model zoo finds a config, in a
    fresh process, without our plugin. Stops with the error and `hint` if not."""
    result = subprocess.run([sys.executable, "-c", ACCEPTANCE_CHECK], capture_output=True, text=True)
    if result.returncode != 0:
        error = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit code {result.returncode}"
        raise SystemExit(
            f"detectron2 is installed but does not work here: {error}\n"
            f"(the check was: python -c {ACCEPTANCE_CHECK!r})\n{hint}"
        )
    log("ok: " + ACCEPTANCE_CHECK.replace("\n", "; "))


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
        hint = (
            f"It is the detectron2 that was already installed ({found}). `pip uninstall detectron2` and run "
            "this again (`make setup [DETECTRON2_SOURCE=<checkout, git URL or wheel>]`) to install one that works."
        )
    elif args.source and source_kind(args.source) == "wheel":
        install_wheel(args.source)
        hint = (
            "Wheels are installed as they are: `pip uninstall detectron2`, then name the wheel's source "
            "(DETECTRON2_SOURCE=<checkout directory> or git+https://...@<ref>), which the installer fixes."
        )
    elif args.source:
        install_from_source(args.source)
        hint = (
            "Its sources got SOURCE_FIXES, yet it fails: upstream changed something else. "
            "Add a SourceFix to dev/install_detectron2.py, or `pip uninstall detectron2` and set up without "
            "DETECTRON2_SOURCE (the registry sdist, detectron2 v0.6)."
        )
    else:
        log(f"building detectron2 from the registry sdist {SDIST_FILE} (no C++/CUDA extension)")
        pip("install", "--no-deps", "--force-reinstall", str(build_wheel_from_sdist(args.cache_dir)))
        hint = "SDIST_FIXES in dev/install_detectron2.py no longer suffice for this stack: add one."
    check_imports(hint)


if __name__ == "__main__":
    main()
