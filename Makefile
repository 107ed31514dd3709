# make setup | demo | test | bench | ablate — see README.md. Every target sets up first if needed.
PYTHON_BASE ?= python3
VENV ?= .venv
# e.g. VENV_FLAGS=--system-site-packages to reuse a torch/detectron2 installed outside the venv
VENV_FLAGS ?=
# a detectron2 source checkout, git+https URL or wheel to install instead of the registry sdist
DETECTRON2_SOURCE ?=
PY := $(VENV)/bin/python
# torch/torchvision pins: the versions this project is tested with (local files on our machines).
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# pip 26 refuses to download the pb1-detectron2 sdist (its metadata names a direct-URL extra).
PIP_PIN := pip==25.2
# Every package but detectron2 and this plugin, at the exact version and hashes the tests passed
# with (`make lock` remakes it). UNLOCKED=1 installs the loose requirements.txt instead, keeping a
# torch the venv already has (VENV_FLAGS=--system-site-packages).
LOCK := requirements.lock
UNLOCKED ?=
STAMP := $(VENV)/.mask_rcnn_ext-setup
# Where `make lock` keeps pip-tools, apart from the project's venv.
LOCK_TOOLS := .cache/lock-tools

.PHONY: setup demo test bench ablate lock clean

setup: $(STAMP)

# The stamp makes a second `make setup` a no-op; it is redone when its inputs change. It records
# how the packages were installed (locked or unlocked); tests/test_packaging.py reads it.
$(STAMP): requirements.txt $(LOCK) pyproject.toml tools/install_detectron2.py
	@test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV_FLAGS) $(VENV)
ifeq ($(UNLOCKED),)
	$(PY) -m pip install --require-hashes -r $(LOCK)
else
	$(PY) -m pip install --quiet $(PIP_PIN)
	@$(PY) -c "import torch, torchvision" 2>/dev/null \
		|| $(PY) -m pip install $(TORCH_PINS)
	$(PY) -m pip install --quiet -r requirements.txt
endif
	DETECTRON2_SOURCE="$(DETECTRON2_SOURCE)" $(PY) tools/install_detectron2.py
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -c "import mask_rcnn_ext"
	@echo $(if $(UNLOCKED),unlocked,locked) > $@
	@echo "set-up done: $(VENV)"

demo: setup
	$(PY) tools/run_demo.py

test: setup
	$(PY) -m pytest tests

# Speed and memory of our R50-FPN Mask R-CNN against detectron2's stock model and torchvision's, and of the
# synthetic config against detectron2's stock heads and R18-FPN backbone (tools/benchmark.py --help), then of
# every mask head, RoI feature op and test read-out against detectron2's at R-50-FPN sizes (tools/benchmark_heads.py --help),
# then of Cityscapes evaluation and loading against the official pipeline (tools/benchmark_cityscapes.py --help).
# On a GPU: make bench BENCH_ARGS="--device cuda" HEADS_BENCH_ARGS="--device cuda".
bench: setup
	$(PY) tools/benchmark.py $(BENCH_ARGS)
	$(PY) tools/benchmark_heads.py $(HEADS_BENCH_ARGS)
	$(PY) tools/benchmark_cityscapes.py $(CITYSCAPES_BENCH_ARGS)

# The CPU-scale Table 2 (tools/ablate.py --help; about an hour on 2 cores, ABLATE_ARGS=--quick for minutes).
ablate: setup
	$(PY) tools/ablate.py $(ABLATE_ARGS)

# Remake $(LOCK) from requirements.txt and the pins above, with pip-tools in a venv of its own
# (about 4 minutes: it hashes every file of each pinned release). Commit the result.
lock:
	@test -x $(LOCK_TOOLS)/bin/pip-compile \
		|| ($(PYTHON_BASE) -m venv $(LOCK_TOOLS) && $(LOCK_TOOLS)/bin/pip install --quiet pip-tools)
	printf '%s\n' $(PIP_PIN) $(TORCH_PINS) > $(LOCK_TOOLS)/pins.in
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_TOOLS)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links \
		--output-file $(LOCK) requirements.txt $(LOCK_TOOLS)/pins.in

clean:
	rm -rf output .pytest_cache
