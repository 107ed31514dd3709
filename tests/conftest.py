"""Shared fixtures. Tests run on CPU, seeded. Three training runs are shared by the tests that need
one: `trained_run`, the demo's recipe on a shortened schedule, only where a learned AP or loss is
asserted (marked slow); `cityscapes_run`, the synthetic Cityscapes model fine-tuned from it; and
`short_run`, a dozen iterations with a 10-image evaluation, for everything structural."""

import functools
import importlib.util
import json
import logging
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every test, in this process or in a tool's subprocess, reads the synthetic datasets from one folder,
# generated on first use and reused by later runs (regenerated when the generator changes). Set
# before mask_rcnn_ext registers its datasets under $DETECTRON2_DATASETS, at import.
DATASETS_DIR = os.path.join(REPO_ROOT, ".cache", "test-datasets")
os.environ["DETECTRON2_DATASETS"] = DATASETS_DIR

from mask_rcnn_ext import build_config, get_config_file  # noqa: E402
from mask_rcnn_ext.config_files import DEMO_CONFIG  # noqa: E402
from mask_rcnn_ext.data import synthetic_metadata  # noqa: E402
from mask_rcnn_ext.engine.distributed import cpu_threads_per_process  # noqa: E402

from mini_datasets import SYNTHETIC_VAL_HALF  # noqa: E402

TESTS_DIR = os.path.join(REPO_ROOT, "tests")
TOOLS_DIR = os.path.join(REPO_ROOT, "tools")
CONFIGS_DIR = os.path.join(REPO_ROOT, "configs")
SYNTHETIC_CONFIG = get_config_file(DEMO_CONFIG)


@functools.cache
def import_tool(name: str):
    """tools/<name>.py as a module, for tests that call its functions or `main(argv)` in-process.
    The tools are scripts, not a package (detectron2 installs a top-level package named `tools`)."""
    spec = importlib.util.spec_from_file_location(f"_tools_{name}", os.path.join(TOOLS_DIR, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(script: str, args, env_overrides: dict, log_path: str, expected_exit_codes=(0,)) -> int:
    """Run tools/<script> in a subprocess, as users do, with `args` and return its exit code; its
    output goes to `log_path`, shown if the exit code is not one of `expected_exit_codes`. tests/ is
    on its PYTHONPATH (after any of `env_overrides`), for `--import mini_datasets`."""
    env = dict(os.environ, **env_overrides)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env_overrides.get("PYTHONPATH"), TESTS_DIR) if p)
    with open(log_path, "w") as log:
        result = subprocess.run(
            [sys.executable, os.path.join(TOOLS_DIR, script), *map(str, args)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if result.returncode not in expected_exit_codes:
        with open(log_path) as log:
            pytest.fail(f"tools/{script} exited {result.returncode}:\n{log.read()[-6000:]}")
    return result.returncode


@dataclass
class Outcome:
    code: int
    text: str  # what the user sees: stdout, stderr and the error's last line(s)


class Collected(logging.Handler):
    """The messages of the loggers a tool logs to (their console handlers write to the stream of
    whichever test set them up first)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def run_tool_in_process(name: str, argv: list[str], capfd) -> Outcome:
    """tools/<name>.py with `argv`, in this process, as its command line would run it: an uncaught
    exception exits 1 (its message shown), SystemExit with its code."""
    tool = import_tool(name)
    code = 0
    text = ""
    logs = Collected()
    loggers = [logging.getLogger(logger) for logger in ("mask_rcnn_ext", "detectron2", "fvcore")]
    for logger in loggers:
        logger.addHandler(logs)
    try:
        if name == "train_net":
            tool.main(tool.parse_args(argv))
        else:
            code = tool.main(argv) or 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
        text = "" if isinstance(exit_.code, int) or exit_.code is None else str(exit_.code)
    except Exception as error:  # noqa: BLE001 (what Python prints for an uncaught one)
        code = 1
        text = "".join(traceback.format_exception_only(type(error), error))
        cause = error.__cause__
        if cause is not None:
            text += "".join(traceback.format_exception_only(type(cause), cause))
    finally:
        for logger in loggers:
            logger.removeHandler(logs)
    captured = capfd.readouterr()
    return Outcome(code, "\n".join([captured.out, captured.err, *logs.lines, text]))


@pytest.fixture
def dataset_names() -> list[str]:
    """Names of the datasets a test registers (it appends them): removed from detectron2's catalogs
    after the test."""
    names = []
    yield names
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


@pytest.fixture
def registered(dataset_names):
    """`registered(name, records)` registers a dataset of the synthetic classes holding `records`
    (for the test only) and returns its name."""

    def register(name: str, records: list[dict]) -> str:
        DatasetCatalog.register(name, lambda: records)
        MetadataCatalog.get(name).set(**synthetic_metadata())
        dataset_names.append(name)
        return name

    return register


@pytest.fixture(scope="session")
def datasets_env() -> dict:
    """Environment for tools run by tests: the synthetic datasets' folder."""
    return {"DETECTRON2_DATASETS": DATASETS_DIR}


# The trained run: the demo's config, data and seed on 350 of its iterations, its warm-up and LR steps
# scaled alike, evaluated on the first 50 of the 100 val images. The whole demo run would take 14 of
# the suite's minutes; this one takes 6 and learns all three tasks (tests/engine/test_training.py).
TRAINED_MAX_ITER = 350


def shortened_schedule(config_file: str, max_iter: int) -> list[str]:
    """Overrides that run `config_file`'s schedule on `max_iter` iterations: its warm-up and LR steps
    scaled by max_iter / its SOLVER.MAX_ITER."""
    solver = build_config(config_file).SOLVER
    scale = max_iter / solver.MAX_ITER
    warmup = round(solver.WARMUP_ITERS * scale)
    steps = ",".join(str(round(step * scale)) for step in solver.STEPS)
    return f"SOLVER.MAX_ITER {max_iter} SOLVER.WARMUP_ITERS {warmup} SOLVER.STEPS ({steps},)".split()


# Floors under what the seeded trained run reaches (box 6.5, mask 2.3, keypoints 4.5; docs/tests.md);
# a model that stops learning any of the three tasks falls below them (the 12-iteration short run: ~0).
# Masks are learnt late in the schedule; the Cityscapes fine-tune from this run asserts mask AP > 12.5.
TRAINED_AP_FLOORS = {"bbox": 5.0, "segm": 1.5, "keypoints": 3.5}
TRAINED_RUN_OPTS = shortened_schedule(SYNTHETIC_CONFIG, TRAINED_MAX_ITER) + (
    f"SOLVER.CHECKPOINT_PERIOD {TRAINED_MAX_ITER} DATASETS.TEST ('{SYNTHETIC_VAL_HALF}',)".split()
)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, datasets_env) -> str:
    """OUTPUT_DIR of one training + evaluation of the demo's config with TRAINED_RUN_OPTS by
    tools/train_net.py (about 6 minutes on 2 cores). Tests that use it are marked slow and assert
    what only a trained model shows. They must not write into it (copy it first).
    """
    output_dir = str(tmp_path_factory.mktemp("trained_run"))
    run_tool(
        "train_net.py",
        ["--import", "mini_datasets", "--config-file", SYNTHETIC_CONFIG, *TRAINED_RUN_OPTS, "OUTPUT_DIR", output_dir],
        datasets_env,
        os.path.join(output_dir, "stdout.log"),
    )
    return output_dir


# The synthetic Cityscapes model: the paper's COCO-initialised recipe at CPU scale, fine-tuned from the
# trained run (tests/tools/test_train_net_cityscapes.py; exported in tests/deploy/).
CITYSCAPES_CONFIG = os.path.join(CONFIGS_DIR, "Synthetic", "cityscapes_mask_rcnn_R18_GN_FPN_demo_init.yaml")


@pytest.fixture(scope="session")
def cityscapes_run(tmp_path_factory, datasets_env, trained_run):
    """OUTPUT_DIR of the demo-initialised synthetic Cityscapes config trained as it stands, with the
    trained run's (`trained_run`) model as its MODEL.WEIGHTS (about 2 minutes on 2 cores)."""
    output_dir = str(tmp_path_factory.mktemp("cityscapes_run"))
    weights = os.path.join(trained_run, "model_final.pth")
    run_tool(
        "train_net.py",
        ["--config-file", CITYSCAPES_CONFIG, "MODEL.WEIGHTS", weights, "OUTPUT_DIR", output_dir],
        datasets_env,
        os.path.join(output_dir, "stdout.log"),
    )
    return output_dir


# The short run: the demo's model and data, trained for a dozen iterations with a checkpoint
# half-way, evaluated on the built-in 10-image split with every detection kept (score threshold 0),
# so that every evaluator has predictions to score.
SYNTHETIC_VAL_MINI = "synthetic_val_mini"
SHORT_MAX_ITER, SHORT_CHECKPOINT_PERIOD = 12, 6
# Its evaluation is compared to the last digit with others, which holds only at equal torch threads
# per process (sums split over other thread counts round differently). A 2-process evaluation gets
# half the cores per process (`share_cpu_cores`), so the short run and every evaluation compared
# with it run with that many (OMP_NUM_THREADS).
COMPARED_EVAL_THREADS = str(cpu_threads_per_process(2))
SHORT_RUN_OPTS = (
    f"SOLVER.MAX_ITER {SHORT_MAX_ITER} SOLVER.CHECKPOINT_PERIOD {SHORT_CHECKPOINT_PERIOD} SOLVER.WARMUP_ITERS 2 "
    f"SOLVER.STEPS (9,) DATASETS.TEST ('{SYNTHETIC_VAL_MINI}',) MODEL.ROI_HEADS.SCORE_THRESH_TEST 0.0"
).split()


# The killed run: the demo's model on the 10-image split at 128 px with no loader process, killed and
# resumed (tests/engine/test_crash_resume.py, test_distributed.py): what is tested is how runs stop
# and resume, and each training process starts and steps in seconds. Checkpoints model_0000002,
# _0000005, _0000008 and model_final.
KILLED_RUN_MAX_ITER, KILLED_RUN_CHECKPOINT_PERIOD = 9, 3
KILLED_RUN_OPTS = (
    f"SOLVER.MAX_ITER {KILLED_RUN_MAX_ITER} SOLVER.CHECKPOINT_PERIOD {KILLED_RUN_CHECKPOINT_PERIOD} "
    f"SOLVER.STEPS (6,) SOLVER.WARMUP_ITERS 2 DATASETS.TRAIN ('{SYNTHETIC_VAL_MINI}',) DATASETS.TEST () "
    "INPUT.MIN_SIZE_TRAIN (128,) INPUT.MAX_SIZE_TRAIN 200 DATALOADER.NUM_WORKERS 0"
).split()


def assert_same_weights(checkpoint_path, expected: dict) -> None:
    """The model in the checkpoint at `checkpoint_path` holds `expected`'s tensors, bit for bit."""
    weights = torch.load(checkpoint_path)["model"]
    assert weights.keys() == expected.keys()
    differing = [name for name in expected if not torch.equal(weights[name], expected[name])]
    assert not differing, f"{len(differing)} of {len(expected)} tensors differ, first {differing[:3]}"


def coco_predictions(output_dir) -> list[dict]:
    """The detections COCOEvaluator saved in `output_dir`/inference, in image order."""
    with open(os.path.join(output_dir, "inference", "coco_instances_results.json")) as f:
        return sorted(json.load(f), key=lambda detection: detection["image_id"])  # stable: keeps each image's order


@pytest.fixture(scope="session")
def short_run(tmp_path_factory, datasets_env) -> str:
    """OUTPUT_DIR of tools/train_net.py's short run (SHORT_RUN_OPTS): checkpoints, metrics and an
    evaluation for the structural and equality tests. Tests must not write into it (copy it first)."""
    output_dir = str(tmp_path_factory.mktemp("short_run"))
    run_tool(
        "train_net.py",
        ["--config-file", SYNTHETIC_CONFIG, *SHORT_RUN_OPTS, "OUTPUT_DIR", output_dir],
        {**datasets_env, "OMP_NUM_THREADS": COMPARED_EVAL_THREADS},
        os.path.join(output_dir, "stdout.log"),
    )
    return output_dir


# How far bf16 inference may move an AP from fp32's (issue #16), on the runs the suite trains.
BF16_AP_TOLERANCE = 0.3


def evaluate_in_precision(run_dir: str, precision: str, output_dir: str, capfd, opts=(), device="cpu") -> dict:
    """`run_dir`'s final model evaluated on its config's DATASETS.TEST (or what `opts` override) by
    `tools/train_net.py --eval-only` in this process, with MASK_RCNN_EXT.PRECISION.TEST `precision`,
    on `device` (the model's, as it logs it: "cpu", "cuda:0"): its eval results."""
    argv = ["--eval-only", "--config-file", os.path.join(run_dir, "config.yaml"), *opts]
    argv += ["MODEL.WEIGHTS", os.path.join(run_dir, "model_final.pth"), "OUTPUT_DIR", output_dir]
    outcome = run_tool_in_process("train_net", argv + ["MASK_RCNN_EXT.PRECISION.TEST", precision], capfd)
    assert outcome.code == 0, outcome.text[-6000:]
    assert f"MaskRCNN inference on {device}: {precision}" in outcome.text
    with open(os.path.join(output_dir, "eval_results.json")) as f:
        return json.load(f)
