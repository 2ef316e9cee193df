# make test            create/update .venv, install, prepare the offline model, run the tests
# make book            execute every chapter with PROFILE (default quick) and render the site
# make chapter CH=02   execute one chapter (PROFILE applies)
# make bench           the training-engine benchmark (benchmarks/)
# make paper-shape     the paper profile's code paths on a random GPT-2 (no hub needed)
PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= quick
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
MODEL   := data/models/smollm2-135m/checksums.json

.PHONY: setup test book chapter bench paper-shape models clean

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(MODEL): $(STAMP)
	$(PY) -m helpers fetch

setup: $(STAMP) $(MODEL)

test: setup
	$(PY) -m pytest

book: setup
	$(PY) -m helpers book --profile $(PROFILE)

chapter: setup
	$(PY) -m helpers run $(CH) --profile $(PROFILE)

bench: setup
	$(PY) benchmarks/bench_training.py --json benchmarks/results/training.json

paper-shape: setup
	$(PY) tools/paper_shape.py

models: setup
	$(PY) -m helpers models

clean:               # the builds, and what killed processes left; runs: python -m helpers clean --runs
	rm -rf _build
	@if [ -x "$(PY)" ]; then $(PY) -m helpers clean; fi
