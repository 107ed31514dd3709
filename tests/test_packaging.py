"""Reproducible set-up and packaging: the lock file `make setup` installs, and the wheel `pip install .` builds."""

import ast
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import CONFIGS_DIR, REPO_ROOT

LOCK_FILE = Path(REPO_ROOT) / "requirements.lock"
PACKAGE_DIR = Path(REPO_ROOT) / "projects" / "mask_rcnn_ext"


def lock_entries() -> dict:
    """{canonical name: (version, [sha256 hashes])} of requirements.lock."""
    entries = {}
    text = LOCK_FILE.read_text()
    # An entry is `name==version \` followed by `--hash=sha256:...` continuation lines.
    for match in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})*)", text, re.M):
        name, version, hash_block = match.groups()
        entries[canonicalize_name(name)] = (version, re.findall(r"sha256:([0-9a-f]{64})", hash_block))
    return entries


def makefile_pins() -> dict:
    """{canonical name: version} of the Makefile's PIP_PIN and TORCH_PINS."""
    text = (Path(REPO_ROOT) / "Makefile").read_text()
    pins = re.search(r"^TORCH_PINS := (.*)$", text, re.M).group(1).split()
    pins += re.search(r"^PIP_PIN := (.*)$", text, re.M).group(1).split()
    return {canonicalize_name(pin.split("==")[0]): pin.split("==")[1] for pin in pins}


def loose_requirements() -> list:
    lines = (Path(REPO_ROOT) / "requirements.txt").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def test_every_lock_entry_is_pinned_with_hashes():
    entries = lock_entries()
    # Every `name==` line of the file was parsed (a format change would silently drop entries).
    assert len(entries) == len(re.findall(r"^[A-Za-z0-9._-]+==", LOCK_FILE.read_text(), re.M)) > 50
    unhashed = sorted(name for name, (_, hashes) in entries.items() if not hashes)
    assert not unhashed, f"entries of requirements.lock without a hash: {unhashed}"


def test_lock_holds_the_makefile_pins_and_satisfies_requirements_txt():
    entries = lock_entries()
    for name, version in makefile_pins().items():
        assert entries[name][0] == version, f"{name}: Makefile pins {version}, the lock {entries[name][0]}"
    for requirement in loose_requirements():
        name = canonicalize_name(requirement.name)
        assert name in entries, f"{requirement} of requirements.txt is not in requirements.lock (run `make lock`)"
        assert requirement.specifier.contains(entries[name][0], prereleases=True), (
            f"requirements.lock pins {name}=={entries[name][0]}, outside requirements.txt's {requirement}"
        )


def test_a_locked_setup_installed_exactly_the_lock():
    """`make setup` writes how it installed into the venv's stamp; a locked set-up must have every
    lock entry at the lock's version (CI sets up locked)."""
    stamp = Path(sys.prefix) / ".mask_rcnn_ext-setup"
    if not stamp.is_file() or stamp.read_text().strip() != "locked":
        pytest.skip(f"this environment was not set up from the lock by `make setup` ({stamp})")
    # the venv's own packages: setuptools, once imported (torch's cpp_extension does), puts its
    # vendored copies on sys.path, and those are not what the set-up installed
    site_packages = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions(path=site_packages)}
    wrong = {
        name: (version, installed.get(name))
        for name, (version, _) in lock_entries().items()
        if installed.get(name) != version
    }
    assert not wrong, f"locked version vs installed: {wrong}"


@pytest.fixture(scope="module")
def wheel_path(tmp_path_factory) -> Path:
    """The plugin's wheel, built from a copy of the files packaging needs (an in-tree build would
    leave build/ and egg-info in the checkout)."""
    source = tmp_path_factory.mktemp("wheel_source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(Path(REPO_ROOT) / name, source / name)
    shutil.copytree(PACKAGE_DIR, source / "projects" / "mask_rcnn_ext", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(CONFIGS_DIR, source / "configs", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("mask_rcnn_ext-*.whl")
    return wheel


def test_wheel_holds_every_module_and_config(wheel_path):
    names = set(zipfile.ZipFile(wheel_path).namelist())
    modules = {f"mask_rcnn_ext/{p.relative_to(PACKAGE_DIR).as_posix()}" for p in PACKAGE_DIR.rglob("*.py")}
    configs = {
        f"mask_rcnn_ext/configs/{p.relative_to(CONFIGS_DIR).as_posix()}" for p in Path(CONFIGS_DIR).rglob("*.yaml")
    }
    assert len(configs) > 30 and "mask_rcnn_ext/data/cityscapes.py" in modules
    assert not modules - names, f"modules missing from the wheel: {sorted(modules - names)}"
    assert not configs - names, f"configs missing from the wheel: {sorted(configs - names)}"
    stray = sorted(n for n in names if not n.startswith(("mask_rcnn_ext/", "mask_rcnn_ext-")))
    assert not stray, f"files outside the package in the wheel: {stray}"


INSTALLED_PLUGIN_CHECK = """
import sys, torch
import mask_rcnn_ext
from mask_rcnn_ext import build_config, get_config_file
from mask_rcnn_ext.config_files import config_names
from detectron2.modeling import build_model

target = sys.argv[1]
assert mask_rcnn_ext.__file__.startswith(target), mask_rcnn_ext.__file__
assert get_config_file("Base-RCNN-FPN.yaml").startswith(target)
for name in config_names():  # every shipped config resolves its _BASE_ chain and passes the checks
    build_config(get_config_file(name), ["MODEL.DEVICE", "cpu"])
cfg = build_config(get_config_file("Synthetic/mask_keypoint_rcnn_R18_GN_FPN.yaml"), ["MODEL.DEVICE", "cpu"])
model = build_model(cfg).eval()
with torch.no_grad():
    (output,) = model([{"image": torch.randint(0, 255, (3, 128, 160), dtype=torch.uint8)}])
instances = output["instances"]
assert instances.has("pred_masks") and instances.has("pred_keypoints"), instances.get_fields().keys()
print(len(config_names()), "configs;", len(instances), "detections")
"""


def test_installed_wheel_is_a_working_plugin(wheel_path, tmp_path):
    """`pip install` of the wheel into a fresh location (torch and detectron2 from this environment):
    the plugin imports from there, every packaged config builds, and a model from one runs."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel_path)],
        check=True,
        capture_output=True,
    )
    # PYTHONPATH comes before this environment's editable install of the checkout.
    env = dict(os.environ, PYTHONPATH=str(target))
    result = subprocess.run(
        [sys.executable, "-c", INSTALLED_PLUGIN_CHECK, str(target)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"{len(list(Path(CONFIGS_DIR).rglob('*.yaml')))} configs;" in result.stdout


def test_wheel_declares_every_package_the_plugin_imports(wheel_path):
    """A fresh environment with torch and detectron2 gets the rest from the wheel's dependencies:
    each third-party module the package imports must belong to a declared distribution."""
    imported = set()
    for path in PACKAGE_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"mask_rcnn_ext"}
    distributions = metadata.packages_distributions()
    needed = {canonicalize_name(distributions[module][0]) for module in third_party}
    wheel_metadata = zipfile.ZipFile(wheel_path).read("mask_rcnn_ext-0.1.0.dist-info/METADATA").decode()
    declared = {
        canonicalize_name(Requirement(line.split(":", 1)[1]).name)
        for line in wheel_metadata.splitlines()
        if line.startswith("Requires-Dist:")
    }
    user_provided = {"torch", "torchvision", "detectron2"}  # docs/install.md
    assert {"cityscapesscripts", "pycocotools", "opencv-python-headless"} <= needed
    assert not needed - user_provided - declared, f"imported but not declared: {needed - user_provided - declared}"
