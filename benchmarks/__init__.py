"""Speed and memory benchmarks: ours beside detectron2, torchvision and the official tools, in one process
(`make bench`; run one with `python -m benchmarks.NAME --help`)."""
