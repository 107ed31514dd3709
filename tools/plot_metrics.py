#!/usr/bin/env python
"""Plot losses and learning rate from a detectron2 OUTPUT_DIR/metrics.json to a PNG; or, given several
runs as LABEL=metrics.json, each loss of every run side by side.

tools/plot_metrics.py output/demo/train/metrics.json output/demo/training_curves.png
tools/plot_metrics.py fp32=out/fp32/metrics.json bf16=out/bf16/metrics.json compared.png
"""

import argparse

from mask_rcnn_ext.engine.training_curves import plot_compared_losses, plot_training_curves


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metrics_json", nargs="+", help="a metrics.json, or several as LABEL=metrics.json")
    parser.add_argument("png")
    args = parser.parse_args(argv)
    try:
        if len(args.metrics_json) == 1 and "=" not in args.metrics_json[0]:
            plot_training_curves(args.metrics_json[0], args.png)
        else:
            labelled = [run.split("=", 1) if "=" in run else (run, run) for run in args.metrics_json]
            runs = dict(labelled)
            if len(runs) < len(labelled):  # one run would silently replace another
                parser.error(f"each run needs its own label: {' '.join(args.metrics_json)}")
            plot_compared_losses(runs, args.png)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
