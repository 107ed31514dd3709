#!/usr/bin/env python
"""A CPU-scale Table 2 of the paper: its mask-branch ablations trained on the synthetic data.

    python -m experiments.table2_cpu.ablate [--seeds 2] [--jobs 2] [--output-dir output/ablation]
    python -m experiments.table2_cpu.ablate --quick   # every run for a few iterations: checks the pipeline (CI)

Steps:
  1. Pretrain the ablation models' narrow ResNet-18 once, as ImageNet pretrains the paper's
     backbones (pretrain_backbone.py beside this file), to OUTPUT/backbone.pkl; reused while it exists
     with the same number of epochs.
  2. Train and evaluate each variant with each seed through tools/train_net.py under one small
     recipe (configs/Synthetic/Ablation/), `--jobs` runs at a time, each on cores / jobs
     threads. A run whose results exist for the same resolved config, starting weights and
     synthetic data generator is not trained again, so an interrupted ablation resumes.
  3. Write OUTPUT/table2.md (mask AP / AP50 / AP75 per variant: mean and range over seeds, the
     paper's numbers beside them, and whether each of the paper's orderings reproduces),
     OUTPUT/table2.png (bar chart) and OUTPUT/results.json.

The variants (the models are half-width ResNet-18s, "R18/2"): Table 2(b) sigmoid vs softmax, the
class-agnostic comparison and 2(e) MLP vs FCN heads on the FPN model; 2(c) RoIPool / RoIWarp /
RoIAlign, max / average, on single-level stride-16 (C4) features and 2(d) RoIPool vs RoIAlign on
stride-32 (C5) features, both with the heads of the paper's Figure 4 (right), which the paper
uses for 2(d). The paper's 2(b), (c) and class-agnostic rows are R-50-C4 models with res5 in the
head; configs/Synthetic/Ablation/mask_rcnn_R18_C4_fcn_head.yaml says why the CPU scale differs.
"""

import argparse
import dataclasses
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Optional

from mask_rcnn_ext import build_config, get_config_file
from mask_rcnn_ext.data.synthetic.spec import GENERATOR_VERSION
from mask_rcnn_ext.engine import EVAL_RESULTS_FILE
from mask_rcnn_ext.io_utils import write_json_atomically
from mask_rcnn_ext.plotting import png_figure

from .pretrain_backbone import pretrain_backbone

TRAIN_NET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "train_net.py")
ABLATION_CONFIGS = os.path.dirname(get_config_file("Synthetic/Ablation/Base-Ablation.yaml"))
FPN, C4, C5 = "mask_rcnn_R18_FPN.yaml", "mask_rcnn_R18_C4_fcn_head.yaml", "mask_rcnn_R18_C5.yaml"


def both_poolers(pooler_type: str) -> tuple[str, ...]:
    """Overrides giving the box and the mask head one RoI feature op, as a C4 model's shared pooler."""
    return ("MODEL.ROI_BOX_HEAD.POOLER_TYPE", pooler_type, "MODEL.ROI_MASK_HEAD.POOLER_TYPE", pooler_type)


# run name -> (architecture config, overrides); the baseline of each architecture has none.
RUNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "fpn_fcn_sigmoid": (FPN, ()),
    "fpn_softmax": (FPN, ("MASK_RCNN_EXT.MASK_HEAD.LOSS", "softmax")),
    "fpn_class_agnostic": (FPN, ("MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK", "True")),
    "fpn_mlp_2fc": (
        FPN,
        ("MODEL.ROI_MASK_HEAD.NAME", "MLPMaskHead", "MASK_RCNN_EXT.MASK_HEAD.MLP_FC_DIMS", "[1024, 1024]"),
    ),
    "fpn_mlp_3fc": (
        FPN,
        ("MODEL.ROI_MASK_HEAD.NAME", "MLPMaskHead", "MASK_RCNN_EXT.MASK_HEAD.MLP_FC_DIMS", "[1024, 1024, 1024]"),
    ),
    "c4_roipool": (C4, both_poolers("ROIPool")),
    "c4_roiwarp_max": (C4, both_poolers("ROIWarpMax")),
    "c4_roiwarp_ave": (C4, both_poolers("ROIWarp")),
    "c4_roialign_max": (C4, both_poolers("ROIAlignMax")),
    "c4_roialign_ave": (C4, ()),
    "c5_roipool": (C5, both_poolers("ROIPool")),
    "c5_roialign": (C5, ()),
}


@dataclasses.dataclass(frozen=True)
class Row:
    """A row of the paper's Table 2 (or text), the run that reproduces it and the paper's numbers."""

    table: str
    label: str
    run: str
    paper_mask: tuple[Optional[float], Optional[float], Optional[float]]  # AP, AP50, AP75 (minival)
    paper_box: Optional[tuple[float, float, float]] = None


ROWS = [
    Row("2(b)", "sigmoid", "fpn_fcn_sigmoid", (30.3, 51.2, 31.5)),
    Row("2(b)", "softmax", "fpn_softmax", (24.8, 44.1, 25.1)),
    Row("2(c)", "RoIPool (max)", "c4_roipool", (26.9, 48.8, 26.4)),
    Row("2(c)", "RoIWarp max", "c4_roiwarp_max", (27.2, 49.2, 27.1)),
    Row("2(c)", "RoIWarp ave", "c4_roiwarp_ave", (27.1, 48.9, 27.1)),
    Row("2(c)", "RoIAlign max", "c4_roialign_max", (30.2, 51.0, 31.8)),
    Row("2(c)", "RoIAlign ave", "c4_roialign_ave", (30.3, 51.2, 31.5)),
    Row("2(d)", "RoIPool", "c5_roipool", (23.6, 46.5, 21.6), (28.2, 52.7, 26.9)),
    Row("2(d)", "RoIAlign", "c5_roialign", (30.9, 51.8, 32.1), (34.0, 55.3, 36.4)),
    Row("2(e)", "MLP fc 1024-1024", "fpn_mlp_2fc", (31.5, 53.7, 32.8)),
    Row("2(e)", "MLP fc 1024-1024-1024", "fpn_mlp_3fc", (31.5, 54.0, 32.6)),
    Row("2(e)", "FCN", "fpn_fcn_sigmoid", (33.6, 55.2, 35.3)),
    Row("text", "class-specific", "fpn_fcn_sigmoid", (30.3, None, None)),
    Row("text", "class-agnostic", "fpn_class_agnostic", (29.7, None, None)),
]
PAPER_BACKBONE = {"2(b)": "R-50-C4", "2(c)": "R-50-C4", "2(d)": "R-50-C5", "2(e)": "R-50-FPN", "text": "R-50-C4"}
OUR_BACKBONE = {FPN: "R18/2-FPN", C4: "R18/2-C4, FPN head", C5: "R18/2-C5, FPN head"}


@dataclasses.dataclass(frozen=True)
class Claim:
    """An ordering the paper reports: `first` beats `second` ("better"), or they tie ("similar")."""

    table: str
    first: str
    second: str
    kind: str
    paper_difference: float
    task: str = "segm"


CLAIMS = [
    Claim("2(b)", "fpn_fcn_sigmoid", "fpn_softmax", "better", 5.5),
    Claim("2(c)", "c4_roialign_ave", "c4_roipool", "better", 3.4),
    Claim("2(c)", "c4_roialign_ave", "c4_roiwarp_ave", "better", 3.2),
    Claim("2(c)", "c4_roialign_max", "c4_roialign_ave", "similar", -0.1),
    Claim("2(c)", "c4_roiwarp_ave", "c4_roipool", "similar", 0.2),
    Claim("2(d)", "c5_roialign", "c5_roipool", "better", 7.3),
    Claim("2(d)", "c5_roialign", "c5_roipool", "better", 5.8, task="bbox"),
    Claim("2(e)", "fpn_fcn_sigmoid", "fpn_mlp_2fc", "better", 2.1),
    Claim("2(e)", "fpn_fcn_sigmoid", "fpn_mlp_3fc", "better", 2.1),
    Claim("text", "fpn_fcn_sigmoid", "fpn_class_agnostic", "better", 0.6),
]

# --quick: every run trains a few iterations on 128-px images of 10 val images and evaluates few
# detections on them, after a backbone pretrained one epoch on the val split's crops alone; numbers
# mean nothing.
QUICK_OPTS = tuple(
    "SOLVER.MAX_ITER 6 SOLVER.STEPS (4,) SOLVER.WARMUP_ITERS 2 INPUT.MIN_SIZE_TRAIN (128,) INPUT.MAX_SIZE_TRAIN 200 "
    "INPUT.MIN_SIZE_TEST 128 INPUT.MAX_SIZE_TEST 200 TEST.DETECTIONS_PER_IMAGE 5 MODEL.RPN.POST_NMS_TOPK_TEST 20 "
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST 0.0 DATALOADER.NUM_WORKERS 0 DATASETS.TRAIN ('synthetic_val_mini',) "
    "DATASETS.TEST ('synthetic_val_mini',)".split()
)
PRETRAIN_EPOCHS, QUICK_PRETRAIN_EPOCHS = 16, 1
QUICK_PRETRAIN_OPTS = ("DATASETS.TRAIN", "('synthetic_val',)")


def run_command(run: str, seed: int, output_dir: str, weights: str, extra_opts: Sequence[str]) -> list[str]:
    config, opts = RUNS[run]
    return [
        sys.executable,
        TRAIN_NET,
        "--config-file",
        os.path.join(ABLATION_CONFIGS, config),
        *opts,
        "SEED",
        str(seed),
        "MODEL.WEIGHTS",
        weights,
        "OUTPUT_DIR",
        output_dir,
        *extra_opts,
    ]


def file_sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def run_fingerprint(command: list[str], data_version: int = GENERATOR_VERSION) -> str:
    """What a run's result depends on: its whole resolved config, the weights it starts from and the
    version of the synthetic data generator that made its datasets."""
    config_file, opts = command[command.index("--config-file") + 1], command[command.index("--config-file") + 2 :]
    cfg = build_config(config_file, opts)
    depends_on = cfg.dump() + file_sha256(cfg.MODEL.WEIGHTS) + f"synthetic data {data_version}"
    return hashlib.sha256(depends_on.encode()).hexdigest()


def train_and_evaluate(command: list[str], output_dir: str, threads: int) -> dict:
    """Run `command` (tools/train_net.py) unless `output_dir` holds the results of a run with the
    same fingerprint (config, starting weights and data generator); returns them."""
    done_file = os.path.join(output_dir, "ablation_run.json")
    fingerprint = run_fingerprint(command)
    if os.path.exists(done_file):
        with open(done_file) as f:
            done = json.load(f)
        if done.get("fingerprint") == fingerprint:
            return done
    os.makedirs(output_dir, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    with open(os.path.join(output_dir, "stdout.log"), "w") as log:
        result = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}; see {output_dir}/stdout.log")
    with open(os.path.join(output_dir, EVAL_RESULTS_FILE)) as f:
        results = json.load(f)
    done = {
        "fingerprint": fingerprint,
        "command": command[1:],
        "results": results,
        "seconds": time.perf_counter() - start,
    }
    write_json_atomically(done_file, done)
    return done


def run_all(
    jobs: dict[tuple[str, int], tuple[list[str], str]], num_parallel: int, threads: int
) -> dict[tuple[str, int], dict]:
    """Train and evaluate every (run, seed) job, `num_parallel` at a time; the first failure stops
    the jobs not yet started and is raised."""
    pool = ThreadPoolExecutor(num_parallel)
    futures = {
        pool.submit(train_and_evaluate, command, output_dir, threads): job
        for job, (command, output_dir) in jobs.items()
    }
    finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
    failed = [future for future in finished if future.exception() is not None]
    pool.shutdown(wait=True, cancel_futures=bool(failed))
    if failed:
        raise failed[0].exception()
    return {job: future.result() for future, job in futures.items()}


def pretrained_backbone(output_dir: str, weights_name: str, epochs: int, opts: Sequence[str] = ()) -> str:
    """The pretrained backbone in `output_dir`, pretrained now unless it exists with `epochs` and
    the config overrides `opts`."""
    weights = os.path.join(output_dir, weights_name)
    record_file = weights + ".json"
    record = {"config": FPN, "epochs": epochs, "opts": list(opts)}
    if os.path.exists(weights) and os.path.exists(record_file):
        with open(record_file) as f:
            if {k: v for k, v in json.load(f).items() if k in record} == record:
                return weights
    stats = pretrain_backbone(os.path.join(ABLATION_CONFIGS, FPN), weights, epochs=epochs, opts=opts)
    write_json_atomically(record_file, dict(record, **stats))
    print(
        f"pretrained {weights}: crop classification accuracy {stats['test_accuracy']:.3f} on the val "
        f"crops, {stats['seconds']:.0f} s",
        flush=True,
    )
    return weights


def summarize(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values), "values": values}


def metric_value(results: dict, task: str, metric: str) -> float:
    """A COCO metric of one run; 0 for a model without detections (detectron2 then reports NaN
    box AP and no mask AP)."""
    value = results.get(task, {}).get(metric, float("nan"))
    return 0.0 if math.isnan(value) else value


def run_summary(done_runs: list[dict]) -> dict:
    """Per task and metric, mean / min / max over seeds."""
    return {
        task: {
            metric: summarize([metric_value(d["results"], task, metric) for d in done_runs])
            for metric in ("AP", "AP50", "AP75")
        }
        for task in ("bbox", "segm")
    }


def claim_verdict(claim: Claim, summaries: dict[str, dict]) -> tuple[float, float, str]:
    """(our difference in AP, the larger seed range of the two runs, verdict)."""
    first, second = (summaries[run][claim.task]["AP"] for run in (claim.first, claim.second))
    difference = first["mean"] - second["mean"]
    spread = max(first["max"] - first["min"], second["max"] - second["min"])
    if len(first["values"]) < 2 or len(second["values"]) < 2:
        verdict = "n/a (one seed: no seed range)"
    elif claim.kind == "similar":
        verdict = (
            "reproduced (within seed range)"
            if abs(difference) <= spread
            else "not reproduced (differ beyond seed range)"
        )
    elif difference > spread:
        verdict = "reproduced"
    elif difference > 0:
        verdict = "same direction, within seed range"
    elif difference >= -spread:
        verdict = "not reproduced (no difference beyond seed range)"
    else:
        verdict = "not reproduced (reversed beyond seed range)"
    return difference, spread, verdict


def _format_ap(summary: dict) -> str:
    return f"{summary['mean']:.1f} [{summary['min']:.1f}, {summary['max']:.1f}]"


def _format_paper(values) -> str:
    return " / ".join("–" if v is None else f"{v:.1f}" for v in values)


def markdown_table(summaries: dict[str, dict], num_seeds: int, run_seconds: float, num_parallel: int) -> str:
    lines = [
        f"Mask AP on `synthetic_val`: mean [min, max] over {num_seeds} seed(s); "
        "the paper's COCO minival numbers beside.",
        "",
        "| Table | variant | paper model | paper mask AP / AP50 / AP75 | ours | mask AP | AP50 | AP75 | box AP |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        segm, box = summaries[row.run]["segm"], summaries[row.run]["bbox"]
        paper = _format_paper(row.paper_mask) + (f" (box {_format_paper(row.paper_box)})" if row.paper_box else "")
        lines.append(
            f"| {row.table} | {row.label} | {PAPER_BACKBONE[row.table]} | {paper} | {OUR_BACKBONE[RUNS[row.run][0]]} | "
            f"{_format_ap(segm['AP'])} | {segm['AP50']['mean']:.1f} | {segm['AP75']['mean']:.1f} | "
            f"{_format_ap(box['AP'])} |"
        )
    lines += [
        "",
        "| Table | paper's ordering | paper Δ AP | our Δ AP | seed range | verdict |",
        "|---|---|---|---|---|---|",
    ]
    labels = {(row.table, row.run): row.label for row in ROWS}  # a run shared by tables has a label in each
    for claim in CLAIMS:
        difference, spread, verdict = claim_verdict(claim, summaries)
        relation = ">" if claim.kind == "better" else "≈"
        task = "box" if claim.task == "bbox" else "mask"
        first, second = labels[claim.table, claim.first], labels[claim.table, claim.second]
        lines.append(
            f"| {claim.table} | {first} {relation} {second} ({task}) | "
            f"{claim.paper_difference:+.1f} | {difference:+.1f} | {spread:.1f} | {verdict} |"
        )
    lines += [
        "",
        f"Training and evaluation: {run_seconds / 60:.0f} minutes summed over the runs, {num_parallel} at a time.",
    ]
    return "\n".join(lines) + "\n"


def bar_chart(summaries: dict[str, dict], png_path: str) -> None:
    """One column per table: our mask AP (top, seed range as error bars) over the paper's (bottom),
    each row on its own scale so that both orderings read at a glance."""
    tables = list(dict.fromkeys(row.table for row in ROWS))
    with png_figure(
        png_path,
        (3.6 * len(tables), 6.5),
        nrows=2,
        ncols=len(tables),
        sharey="row",
        squeeze=False,
        gridspec_kw={"width_ratios": [sum(r.table == t for r in ROWS) for t in tables]},
    ) as (_, axes):
        for column, table in enumerate(tables):
            rows = [row for row in ROWS if row.table == table]
            xs = list(range(len(rows)))
            ours = [summaries[row.run]["segm"]["AP"] for row in rows]
            top, bottom = axes[0][column], axes[1][column]
            top.bar(
                xs,
                [o["mean"] for o in ours],
                0.6,
                color="tab:blue",
                capsize=3,
                yerr=[[o["mean"] - o["min"] for o in ours], [o["max"] - o["mean"] for o in ours]],
            )
            bottom.bar(xs, [row.paper_mask[0] for row in rows], 0.6, color="tab:gray")
            top.set_title(f"Table {table}" if table != "text" else "class-specific vs agnostic")
            top.set_xticks(xs, [""] * len(xs))
            bottom.set_xticks(xs, [row.label for row in rows], rotation=30, ha="right", fontsize=8)
            for ax in (top, bottom):
                ax.grid(axis="y", alpha=0.3)
        axes[0][0].set_ylabel("ours: mask AP, synthetic_val\n(mean, seed range)")
        axes[1][0].set_ylabel("paper: mask AP, COCO minival")
        axes[1][0].set_ylim(0, 40)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, help="seeds per variant (default 2; 1 with --quick)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, each on cores / jobs threads")
    parser.add_argument(
        "--output-dir",
        help="default: the folder of the recipe's MODEL.WEIGHTS (output/ablation), with '_quick' appended for --quick",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few iterations per run: checks the pipeline, not the numbers"
    )
    args = parser.parse_args(argv)
    seeds = args.seeds or (1 if args.quick else 2)
    if seeds < 1 or args.jobs < 1:
        parser.error(f"--seeds and --jobs must be >= 1 (got {seeds} and {args.jobs})")
    recipe_weights = build_config(
        os.path.join(ABLATION_CONFIGS, FPN)
    ).MODEL.WEIGHTS  # where the recipe expects the backbone
    output_dir = args.output_dir or os.path.dirname(recipe_weights) + ("_quick" if args.quick else "")
    os.makedirs(output_dir, exist_ok=True)
    start = time.perf_counter()
    weights_name = os.path.basename(recipe_weights)
    if args.quick:
        weights = pretrained_backbone(output_dir, weights_name, QUICK_PRETRAIN_EPOCHS, QUICK_PRETRAIN_OPTS)
    else:
        weights = pretrained_backbone(output_dir, weights_name, PRETRAIN_EPOCHS)

    jobs = {}
    for seed in range(seeds):
        for run in RUNS:
            run_dir = os.path.join(output_dir, "runs", run, f"seed{seed}")
            jobs[run, seed] = (run_command(run, seed, run_dir, weights, QUICK_OPTS if args.quick else ()), run_dir)
    done = run_all(jobs, args.jobs, threads=max(1, (os.cpu_count() or 1) // args.jobs))
    run_seconds = {f"{run}/seed{seed}": d["seconds"] for (run, seed), d in done.items()}

    summaries = {run: run_summary([done[run, seed] for seed in range(seeds)]) for run in RUNS}
    table = markdown_table(summaries, seeds, sum(run_seconds.values()), args.jobs)
    with open(os.path.join(output_dir, "table2.md"), "w") as f:
        f.write(table)
    bar_chart(summaries, os.path.join(output_dir, "table2.png"))
    write_json_atomically(
        os.path.join(output_dir, "results.json"),
        {
            "seeds": seeds,
            "quick": args.quick,
            "seconds": time.perf_counter() - start,
            "summaries": summaries,
            "run_seconds": run_seconds,
        },
    )
    print(table)
    print(f"wrote {output_dir}/table2.md, table2.png, results.json ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
