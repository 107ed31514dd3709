"""Studies that produce the figures of docs/ (run from the repository root with `python -m experiments.NAME`)."""
