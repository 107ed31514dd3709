#!/usr/bin/env python
"""Plot losses and learning rate from a detectron2 OUTPUT_DIR/metrics.json to a PNG.

tools/plot_metrics.py output/demo/train/metrics.json output/demo/training_curves.png
"""

import argparse

from mask_rcnn_ext.engine.training_curves import plot_training_curves

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metrics_json")
    parser.add_argument("png")
    args = parser.parse_args()
    plot_training_curves(args.metrics_json, args.png)
    print(f"wrote {args.png}")
