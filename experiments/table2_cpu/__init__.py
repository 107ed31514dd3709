"""The paper's Table 2 at CPU scale: a pretrained narrow backbone and every mask-branch variant on the
synthetic data (`make ablate`; `python -m experiments.table2_cpu.ablate --help`)."""
