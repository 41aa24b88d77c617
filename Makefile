# radlens: two commands for a newcomer.
#   make run   set up .venv and analyze the real pydicom-data samples (radlens demo)
#   make test  set up .venv (with the training extra) and run the whole test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= radlens-demo

.PHONY: run test bench bench-models zoo lint typecheck clean setup setup-dev web serve fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Run-time install: no torch.
$(VENV)/.run-installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[demo]'
	touch $@

# Tests, training and the service: torch 2.13.0 CPU pinned by constraints.txt (never torchvision).
$(VENV)/.dev-installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[train,dev,serve,postgres,cluster]'
	touch $@ $(VENV)/.run-installed

setup: $(VENV)/.run-installed
setup-dev: $(VENV)/.dev-installed

run: $(VENV)/.run-installed
	$(BIN)/radlens demo -o $(OUT)

test: $(VENV)/.dev-installed web
	$(BIN)/pytest -q

# The web UI (web/, npm + Vite) built into src/radlens/server/static; rebuilt only when its
# sources change (the built index.html is the stamp; npm ci only when the lock file changes).
WEB_SOURCES := web/package.json web/index.html $(wildcard web/vite.config.* web/tsconfig*.json) \
	$(shell find web/src -type f 2>/dev/null)
web: src/radlens/server/static/index.html
web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@
src/radlens/server/static/index.html: web/node_modules/.package-lock.json $(WEB_SOURCES)
	cd web && npm run build

serve: web setup-dev
	$(BIN)/radlens serve

bench: $(VENV)/.dev-installed
	$(BIN)/python benchmarks/bench_analyze.py
	$(BIN)/python benchmarks/bench_intake.py

# Retrain every shipped model from its recipe (needs ../shared/data; about an hour on 2 cores).
# recipes/adrenal_ct_3d.toml (a comparison twin) is not shipped: the weights stay under 40 MB.
ZOO_RECIPES ?= $(filter-out recipes/adrenal_ct_3d.toml,$(wildcard recipes/*.toml))
zoo: $(VENV)/.dev-installed
	$(BIN)/radlens data prepare fracatlas ../shared/data/det/fracatlas_fracture -o build/data/fracatlas
	for r in $(ZOO_RECIPES); do \
		n=$$(basename $$r .toml); \
		$(BIN)/radlens train $$r -o src/radlens/zoo/$$n || exit 1; \
	done

# Model figures from ../shared/data (val only). benchmarks/bench_robustness.py compares two
# model folders (before / after robustness training): see its docstring for the command.
bench-models: $(VENV)/.dev-installed
	$(BIN)/python benchmarks/bench_models.py
	$(BIN)/python benchmarks/bench_calibration.py
	$(BIN)/python benchmarks/bench_trust.py
	$(BIN)/python benchmarks/bench_seg_det.py
	$(BIN)/python benchmarks/bench_det.py

# Coverage-guided fuzzing of the intake path (atheris/libFuzzer), FUZZ_SECONDS long; the
# totals go to benchmarks/fuzz.json (see benchmarks/fuzz.md). make test runs a bounded
# hypothesis version of the same target (tests/io/test_fuzz.py, 30 s at most).
FUZZ_SECONDS ?= 3600
fuzz: $(VENV)/.dev-installed
	$(BIN)/pip install --quiet -c constraints.txt -e '.[fuzz]'
	$(BIN)/python benchmarks/fuzz_intake.py --seconds $(FUZZ_SECONDS) \
		--work $${TMPDIR:-/tmp}/radlens-fuzz-$$$$ --out benchmarks/fuzz.json

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache
