"""Trainer glue: evaluator choice, config checks. No model logic here."""

from .config_vs_datasets import check_config, config_errors
from .evaluators import build_evaluator
from .trainer import EVAL_RESULTS_FILE, Trainer, build_config

__all__ = ["EVAL_RESULTS_FILE", "Trainer", "build_config", "build_evaluator", "check_config", "config_errors"]
