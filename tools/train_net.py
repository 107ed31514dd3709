#!/usr/bin/env python
"""Train or evaluate a mask_rcnn_ext model with detectron2's standard arguments.

    tools/train_net.py --config-file configs/Synthetic/mask_keypoint_rcnn_R18_GN_FPN.yaml
    tools/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS output/model_final.pth
    tools/train_net.py --config-file CFG --eval-only --exported exported/model.onnx --backend openvino
    tools/train_net.py --config-file CFG --resume          # continue from OUTPUT_DIR/last_checkpoint
    tools/train_net.py --config-file CFG --num-gpus 8 SOLVER.IMS_PER_BATCH 16
    tools/train_net.py --config-file CFG --num-gpus 2      # on a machine without GPU: 2 CPU processes (GLOO)
    torchrun --nproc-per-node 8 --max-restarts 3 tools/train_net.py --config-file CFG   # restarts resume by themselves
    srun --ntasks-per-node 8 python tools/train_net.py --resume --config-file CFG       # one task per worker
    tools/train_net.py --import my_project.datasets --config-file CFG   # your datasets / heads

Evaluators follow each test dataset's metadata (COCO boxes/masks/keypoints, OKS sigmas from the
dataset); results are also written to OUTPUT_DIR/eval_results.json.
"""

from detectron2.engine import default_argument_parser

from mask_rcnn_ext import Trainer, build_config
from mask_rcnn_ext.deploy.runtime import BACKENDS, ExportedModel, ExportedPredictor, wrong_file_for_backend
from mask_rcnn_ext.engine.checkpoint import Checkpointer
from mask_rcnn_ext.engine.dataset_checks import check_test_datasets
from mask_rcnn_ext.engine.distributed import shut_down_process_group
from mask_rcnn_ext.engine.launch import launch, resumes_after_elastic_restart
from mask_rcnn_ext.engine.run_records import RunRecords
from mask_rcnn_ext.user_modules import add_import_argument, import_user_modules, parse_args_importing


def run(args):
    """Train, or evaluate with --eval-only. OUTPUT_DIR's earlier files stay as they are until the
    config, the data and the weights have been accepted (`RunRecords`)."""
    cfg = build_config(args.config_file, args.opts)
    with RunRecords(cfg, args) as records:
        if args.exported:
            threshold = cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST  # the config's, as for the PyTorch model
            model = ExportedModel(ExportedPredictor(args.exported, args.backend, score_threshold=threshold))
            check_test_datasets(cfg)
            records.checks_passed(trains=False)
            return Trainer.test(cfg, model)
        if args.eval_only:
            model = Trainer.build_model(cfg)
            checkpointer = Checkpointer(model, cfg.OUTPUT_DIR, allow_partial=cfg.MASK_RCNN_EXT.WEIGHTS.ALLOW_PARTIAL)
            checkpointer.resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
            check_test_datasets(cfg)
            records.checks_passed(trains=False)
            return Trainer.test(cfg, model)
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=args.resume or resumes_after_elastic_restart())
        records.checks_passed(trains=True)
        return trainer.train()


def parse_args(argv=None):
    """detectron2's standard arguments and `--import`; a module that fails to import stops here,
    before any worker process starts."""
    parser = default_argument_parser()
    parser.add_argument(
        "--exported",
        metavar="FILE",
        help="with --eval-only: evaluate this model.onnx (or model.pt2: torch_export) of tools/export_model.py",
    )
    parser.add_argument("--backend", choices=BACKENDS, default="onnxruntime", help="the runtime of --exported")
    add_import_argument(parser)
    args = parse_args_importing(parser, argv)
    if args.exported and not args.eval_only:
        parser.error("--exported evaluates an exported model: use it with --eval-only")
    wrong_file = args.exported and wrong_file_for_backend(args.exported, args.backend)
    if wrong_file:
        parser.error(f"--exported {wrong_file}")
    return args


def main(args):
    import_user_modules(args.imports)  # again in every worker process: registrations live in the process
    results = run(args)
    shut_down_process_group()  # with --num-gpus > 1, every worker leaves the group cleanly
    return results


if __name__ == "__main__":
    args = parse_args()
    launch(main, args)  # detectron2's launcher, or the group torchrun or srun started this process in
