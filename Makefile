# Two set-up commands for a fresh machine: `make demo` and `make test` (and `make cost`: projected A100-hours).
# Both create or reuse .venv and install what the project needs (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Extra pip arguments, e.g. PIP_EXTRA="--extra-index-url https://download.pytorch.org/whl/cpu"
# on a laptop to get the small CPU build of torch.
PIP_EXTRA ?=
TORCH ?= torch==2.13.0

.PHONY: demo test cost status install clean-demo

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)" $(PIP_EXTRA)
	$(PY) -m pip install -q -e ".[test]" $(PIP_EXTRA)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/snakemake --profile profiles/local --configfile=config/demo.yaml

test: $(STAMP)
	$(VENV)/bin/pytest

# Projected A100-hours of a config as a range (benchmarks/gpu/cost_model.py), e.g.
# make cost CONFIG=config/pilot.yaml
CONFIG ?= config/config.yaml
cost: $(STAMP)
	$(PY) benchmarks/gpu/cost_model.py --config $(CONFIG)

# Every training run of a config at a glance (done / running / collapsed / failed, step, reward, ETA),
# read from its results tree, e.g. make status CONFIG=config/demo.yaml
status: $(STAMP)
	$(PY) -m misalign_fv.status --config $(CONFIG)

clean-demo:
	rm -rf results/demo work .snakemake
