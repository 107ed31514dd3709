# make setup | demo | test | test-fast | lint | format | bench | ablate | lock — see README.md.
# Every target but lock sets up first if needed.
PYTHON_BASE ?= python3
VENV ?= .venv
# e.g. VENV_FLAGS=--system-site-packages to reuse a torch/detectron2 installed outside the venv
VENV_FLAGS ?=
# a detectron2 source checkout, git+https URL or wheel to install instead of the registry sdist
# (a checkout or git URL is built from a copy with dev/install_detectron2.py's SOURCE_FIXES; a wheel as it is)
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

.PHONY: setup demo test test-fast lint format bench ablate lock clean

setup: $(STAMP)

# The stamp makes a second `make setup` a no-op; it is redone when its inputs change. It records
# how the packages were installed (locked or unlocked); tests/test_packaging.py reads it.
$(STAMP): requirements.txt $(LOCK) pyproject.toml dev/install_detectron2.py
	@test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV_FLAGS) $(VENV)
ifeq ($(UNLOCKED),)
	$(PY) -m pip install --require-hashes -r $(LOCK)
else
	$(PY) -m pip install --quiet $(PIP_PIN)
	@$(PY) -c "import torch, torchvision" 2>/dev/null \
		|| $(PY) -m pip install $(TORCH_PINS)
	$(PY) -m pip install --quiet -r requirements.txt
endif
	DETECTRON2_SOURCE="$(DETECTRON2_SOURCE)" $(PY) dev/install_detectron2.py
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -c "import mask_rcnn_ext"
	@echo $(if $(UNLOCKED),unlocked,locked) > $@
	@echo "set-up done: $(VENV)"

demo: setup
	$(PY) tools/quickstart.py

# The whole suite, with its 20 slowest tests listed (CI runs `make lint test`).
test: setup
	$(PY) -m pytest tests --durations=20

# The edit loop: every test but those that train or run a long tool (marked `slow`).
test-fast: setup
	$(PY) -m pytest tests -m "not slow"

# ruff's formatter and linter, configured in pyproject.toml; `make format` applies both.
lint: setup
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# Speed and memory beside detectron2, torchvision and the official Cityscapes tools, and of exported models
# in ONNX Runtime and OpenVINO beside PyTorch, each in one process
# (docs/performance.md; `python -m benchmarks.NAME --help`). On a GPU:
# make bench BENCH_ARGS="--device cuda" HEADS_BENCH_ARGS="--device cuda".
bench: setup
	$(PY) -m benchmarks.peers $(BENCH_ARGS)
	$(PY) -m benchmarks.heads $(HEADS_BENCH_ARGS)
	$(PY) -m benchmarks.cityscapes $(CITYSCAPES_BENCH_ARGS)
	$(PY) -m benchmarks.deploy $(DEPLOY_BENCH_ARGS)

# The CPU-scale Table 2 (docs/mask_branch.md; about an hour on 2 cores, ABLATE_ARGS=--quick for minutes).
ablate: setup
	$(PY) -m experiments.table2_cpu.ablate $(ABLATE_ARGS)

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
