"""The detectron2 this project installs: imports alone, fails clearly where its extension is missing,
and the installer refuses an sdist its fixes were not written for. The named-source route
(DETECTRON2_SOURCE: checkout, git URL, wheel) on small fake source trees, pip stubbed out."""

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dev import install_detectron2


def test_detectron2_imports_without_the_plugin():
    """The installer's acceptance check (model zoo included) passes here, without the plugin."""
    code = install_detectron2.ACCEPTANCE_CHECK + (
        "\nimport sys, detectron2.engine; assert 'mask_rcnn_ext' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def has_extension():
    import importlib.util

    return importlib.util.find_spec("detectron2._C") is not None


@pytest.mark.skipif(has_extension(), reason="this detectron2 has its C++ extension")
def test_extension_ops_fail_with_instructions():
    import torch
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated

    boxes = torch.tensor([[10.0, 10.0, 4.0, 4.0, 0.0]])
    with pytest.raises(ImportError, match=r"box_iou_rotated.*C\+\+/CUDA extension.*full build"):
        pairwise_iou_rotated(boxes, boxes)


def test_fixes_refuse_source_that_does_not_match(tmp_path: Path):
    (tmp_path / "setup.py").write_text('setup(name="something-else")\n')
    (tmp_path / "detectron2").mkdir()
    fix = install_detectron2.SourceFix("setup.py", r'name="pb1-detectron2"', 'name="detectron2"', 1, "why")
    with pytest.raises(SystemExit, match=r"setup\.py: pattern .* matched 0 times, expected 1"):
        install_detectron2.apply_fixes(tmp_path, [fix])


def test_fixes_apply_exact_counts(tmp_path: Path):
    (tmp_path / "detectron2").mkdir()
    (tmp_path / "m.py").write_text("a = np.bool\nb = np.bool_\nc = np.int(3)\nd = np.float32\n")
    fix = install_detectron2.SourceFix("m.py", install_detectron2._NUMPY_ALIAS, r"\1", 2, "why")
    install_detectron2.apply_fixes(tmp_path, [fix])
    assert (tmp_path / "m.py").read_text() == "a = bool\nb = np.bool_\nc = int(3)\nd = np.float32\n"


def _gather_rank(_):
    from detectron2.utils import comm

    from mask_rcnn_ext.engine.distributed import shut_down_process_group

    ranks = comm.all_gather(comm.get_rank())
    assert ranks == [0, 1], ranks
    shut_down_process_group()  # exiting with a live GLOO group can abort the worker


def test_launch_two_processes_on_cpu():
    """detectron2's launcher runs multi-process training on CPU (GLOO), as upstream main does."""
    from detectron2.engine import launch

    launch(_gather_rank, num_gpus_per_machine=2, dist_url="auto", args=(None,))


# detectron2 main's model_zoo.py (June 2026), the part SOURCE_FIXES change.
MAIN_MODEL_ZOO = """\
import os
from typing import Optional
import pkg_resources
import torch


def get_config_file(config_path):
    cfg_file = pkg_resources.resource_filename(
        "detectron2.model_zoo", os.path.join("configs", config_path)
    )
    if not os.path.exists(cfg_file):
        raise RuntimeError("{} not available in Model Zoo!".format(config_path))
    return cfg_file
"""

FIXED_MODEL_ZOO = """\
import os
from typing import Optional
import importlib.resources
import torch


def get_config_file(config_path):
    cfg_file = str(importlib.resources.files("detectron2.model_zoo").joinpath(os.path.join("configs", config_path)))
    if not os.path.exists(cfg_file):
        raise RuntimeError("{} not available in Model Zoo!".format(config_path))
    return cfg_file
"""

MODEL_ZOO_PY = "detectron2/model_zoo/model_zoo.py"


def fake_checkout(root: Path, model_zoo: str = MAIN_MODEL_ZOO) -> Path:
    """A detectron2 checkout with what the installer looks at, and what a used checkout has besides."""
    files = {
        "setup.py": "from setuptools import setup\nsetup()\n",
        "detectron2/__init__.py": '__version__ = "0.6"\n',
        MODEL_ZOO_PY: model_zoo,
        "detectron2/data/build.py": "x = 1\n",
        "detectron2/modeling/build/keep.py": "",  # a `build` folder below the top is source
        "configs/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml": "MODEL: {}\n",
        ".git/HEAD": "ref: refs/heads/main\n",
        "build/temp/vision.o": "",
        "dist/detectron2-0.6.whl": "",
        "detectron2.egg-info/PKG-INFO": "",
        "detectron2/__pycache__/x.pyc": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_source_fixes_turn_main_model_zoo_into_importlib_resources(tmp_path: Path):
    fake_checkout(tmp_path)
    assert install_detectron2.fix_source(tmp_path, "main") == 2
    fixed = (tmp_path / MODEL_ZOO_PY).read_text()
    assert fixed == FIXED_MODEL_ZOO
    ast.parse(fixed)


def test_source_fixes_accept_a_source_upstream_already_fixed(tmp_path: Path):
    fake_checkout(tmp_path, FIXED_MODEL_ZOO)
    assert all(0 in fix.expected_counts for fix in install_detectron2.SOURCE_FIXES)
    assert install_detectron2.fix_source(tmp_path, "a fixed main") == 0
    assert (tmp_path / MODEL_ZOO_PY).read_text() == FIXED_MODEL_ZOO


def test_source_fixes_refuse_an_unexpected_count(tmp_path: Path):
    fake_checkout(tmp_path, MAIN_MODEL_ZOO + MAIN_MODEL_ZOO.split("\n\n\n")[1])  # a second resource_filename call
    with pytest.raises(SystemExit, match=r"model_zoo\.py: pattern .* matched 2 times, expected 0 or 1 .*main-ish"):
        install_detectron2.fix_source(tmp_path, "main-ish")


@pytest.mark.parametrize(
    ("model_zoo", "elsewhere", "where"),
    [
        # upstream reformatted the call: the import fix matches, the call fix does not
        (
            MAIN_MODEL_ZOO.replace('os.path.join("configs", config_path)', '"configs/" + config_path'),
            "",
            "model_zoo.py:8",
        ),
        # a new use in another module
        (FIXED_MODEL_ZOO, "import os\nfrom pkg_resources import resource_string\n", "elsewhere.py:2"),
    ],
)
def test_source_fixes_refuse_pkg_resources_left_over(tmp_path: Path, model_zoo, elsewhere, where):
    fake_checkout(tmp_path, model_zoo)
    (tmp_path / "detectron2" / "elsewhere.py").write_text(elsewhere)
    with pytest.raises(
        SystemExit, match=rf"still has code .*\n  detectron2/.*{where}: '.*pkg_resources.*' \(setuptools 81"
    ):
        install_detectron2.fix_source(tmp_path, "main-ish")


@pytest.fixture
def pip_calls(monkeypatch):
    """Stub of the installer's pip: records each call with a snapshot of the source tree it installs."""
    calls = []

    def pip(*args, env=None):
        target = Path(args[-1])
        tree = {}
        if target.is_dir():
            tree = {str(p.relative_to(target)): p.read_text() for p in sorted(target.rglob("*")) if p.is_file()}
        calls.append({"args": args, "env": env or {}, "tree": tree})

    monkeypatch.setattr(install_detectron2, "pip", pip)
    return calls


def test_checkout_is_fixed_in_a_copy_and_installed_from_it(tmp_path: Path, pip_calls):
    checkout = fake_checkout(tmp_path / "detectron2-main")
    before = {p: p.read_bytes() for p in checkout.rglob("*") if p.is_file()}
    install_detectron2.install_from_source(str(checkout))
    (call,) = pip_calls
    assert call["args"][:2] == ("install", "--no-build-isolation") and Path(call["args"][2]) != checkout
    assert call["env"] == {"D2_VERSION_SUFFIX": install_detectron2.SOURCE_VERSION_SUFFIX}
    assert call["tree"][MODEL_ZOO_PY] == FIXED_MODEL_ZOO
    assert sorted(call["tree"]) == [
        "configs/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml",
        "detectron2/__init__.py",
        "detectron2/data/build.py",
        MODEL_ZOO_PY,
        "detectron2/modeling/build/keep.py",
        "setup.py",
    ]
    assert {p: p.read_bytes() for p in checkout.rglob("*") if p.is_file()} == before
    assert not Path(call["args"][2]).exists()  # the copy is gone


def test_checkout_upstream_fixed_gets_no_version_label(tmp_path: Path, pip_calls):
    install_detectron2.install_from_source(str(fake_checkout(tmp_path, FIXED_MODEL_ZOO)))
    assert pip_calls[0]["env"] == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "git+https://github.com/facebookresearch/detectron2.git",
            ("https://github.com/facebookresearch/detectron2.git", None),
        ),
        (
            "git+https://github.com/facebookresearch/detectron2.git@v0.6",
            ("https://github.com/facebookresearch/detectron2.git", "v0.6"),
        ),
        (
            "git+https://github.com/facebookresearch/detectron2@02b5c4e2#egg=detectron2",
            ("https://github.com/facebookresearch/detectron2", "02b5c4e2"),
        ),
        (
            "git+ssh://git@github.com/facebookresearch/detectron2.git@main",
            ("ssh://git@github.com/facebookresearch/detectron2.git", "main"),
        ),
        ("git+file:///srv/detectron2", ("file:///srv/detectron2", None)),
    ],
)
def test_git_urls_are_read_as_pip_does(source, expected):
    assert install_detectron2.parse_git_url(source) == expected


@pytest.mark.parametrize("source", ["git+https://github.com/x/y.git@", "git+detectron2"])
def test_git_urls_that_name_nothing_are_refused(source):
    with pytest.raises(SystemExit, match="not a git URL"):
        install_detectron2.parse_git_url(source)


def git(*args: str, cwd: Path) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main", *args]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def upstream_repo(tmp_path: Path) -> tuple[Path, str]:
    """A local git repository standing in for GitHub: commit 1 has main's model_zoo.py, commit 2
    (the branch head) upstream's own fix; tag v1 on commit 1. Returns (repo, commit 1's sha)."""
    repo = fake_checkout(tmp_path / "upstream")
    git("init", "--quiet", cwd=repo)
    git("add", "setup.py", "detectron2", "configs", cwd=repo)
    git("commit", "--quiet", "-m", "main", cwd=repo)
    git("tag", "v1", cwd=repo)
    first = git("rev-parse", "HEAD", cwd=repo)
    (repo / MODEL_ZOO_PY).write_text(FIXED_MODEL_ZOO)
    git("commit", "--quiet", "-am", "upstream fix", cwd=repo)
    return repo, first


@pytest.mark.parametrize("ref", ["", "@main", "@v1", "@FIRST"])
def test_git_url_is_fetched_then_fixed_like_a_checkout(tmp_path: Path, upstream_repo, pip_calls, ref):
    repo, first = upstream_repo
    source = f"git+{repo.as_uri()}{ref.replace('FIRST', first)}#egg=detectron2"
    install_detectron2.install_from_source(source)
    (call,) = pip_calls
    assert call["args"][:2] == ("install", "--no-build-isolation")
    assert not any(name.startswith(".git") for name in call["tree"])
    assert call["tree"][MODEL_ZOO_PY] == FIXED_MODEL_ZOO  # fixed here (commit 1) or upstream (head)
    old_commit = ref in ("@v1", "@FIRST")
    assert call["env"] == ({"D2_VERSION_SUFFIX": "+srcfix"} if old_commit else {})


def test_git_url_that_cannot_be_fetched_says_what_to_do(tmp_path: Path, pip_calls):
    with pytest.raises(SystemExit, match=r"could not fetch .*DETECTRON2_SOURCE=<checkout directory>"):
        install_detectron2.install_from_source(f"git+{(tmp_path / 'nowhere').as_uri()}")
    assert pip_calls == []


def fake_wheel(path: Path, model_zoo: str) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("detectron2/__init__.py", '__version__ = "0.6"\n')
        archive.writestr(MODEL_ZOO_PY, model_zoo)
    return path


def test_wheel_that_needs_a_fix_is_refused_before_installing(tmp_path: Path, pip_calls):
    wheel = fake_wheel(tmp_path / "detectron2-0.6-cp311-cp311-linux_x86_64.whl", MAIN_MODEL_ZOO)
    with pytest.raises(
        SystemExit,
        match=r"installed as it is:\n  detectron2/model_zoo/model_zoo\.py: setuptools 81 .*\n.*\nName its source",
    ):
        install_detectron2.install_wheel(str(wheel))
    assert pip_calls == []


def test_wheel_that_needs_no_fix_is_installed_as_it_is(tmp_path: Path, pip_calls):
    wheel = fake_wheel(tmp_path / "detectron2-0.7-cp311-cp311-linux_x86_64.whl", FIXED_MODEL_ZOO)
    install_detectron2.install_wheel(str(wheel))
    assert [c["args"] for c in pip_calls] == [("install", str(wheel))]
    assert wheel.read_bytes() == fake_wheel(tmp_path / "again.whl", FIXED_MODEL_ZOO).read_bytes()


@pytest.mark.parametrize(
    ("source", "kind"),
    [("git+https://h/r.git", "git"), ("dist/detectron2-0.6-py3-none-any.whl", "wheel"), (".", "checkout")],
)
def test_source_kinds(source, kind):
    assert install_detectron2.source_kind(source) == kind


@pytest.mark.parametrize("source", ["detectron2==0.6", "/no/such/checkout"])
def test_unknown_sources_are_refused(source):
    with pytest.raises(SystemExit, match="expected a detectron2 source checkout"):
        install_detectron2.source_kind(source)


def test_not_a_checkout_is_refused(tmp_path: Path, pip_calls):
    with pytest.raises(SystemExit, match="not a detectron2 source checkout"):
        install_detectron2.install_from_source(str(tmp_path))
    assert pip_calls == []


def test_failed_acceptance_check_stops_with_the_error_and_the_hint(monkeypatch):
    monkeypatch.setattr(install_detectron2, "ACCEPTANCE_CHECK", "import pkg_resources")
    with pytest.raises(SystemExit, match=r"does not work here: ModuleNotFoundError: No module named 'pkg_resources'"):
        install_detectron2.check_imports("the hint")
    with pytest.raises(SystemExit, match=r"\nthe hint$"):
        install_detectron2.check_imports("the hint")
