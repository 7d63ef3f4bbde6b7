# posenc: `make demo` and `make test` work on a fresh machine (they create .venv and install what they need).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed

.PHONY: demo test install clean bench-perf mutmut

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# the CPU wheel of torch 2.13.0 that lies on disk; never an unpinned torch (that pulls CUDA)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[test,ray]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/posenc fit image --protocol gen25 --res 256 --iters 800 --threads 2 --out demo
	@echo "demo: see demo/comparison.png (target | reconstruction | error) and demo/metrics.json"

test: $(STAMP)
	@# the report test renders report.html in headless Chromium (Debian's package); installed when missing
	@command -v chromium >/dev/null 2>&1 || (apt-get install -y -q chromium >/dev/null 2>&1 \
	  || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
	  || echo "make test: could not install chromium; the report-rendering test will fail"
	OMP_NUM_THREADS=1 $(PY) -m pytest -q

bench-perf: $(STAMP)
	$(VENV)/bin/posenc bench perf --threads 2 --out benchmarks/results/perf

# mutation testing of the formula modules (about an hour on 2 cores); results in benchmarks/results/mutmut
mutmut: $(STAMP)
	$(PIP) install --quiet mutmut
	rm -rf mutants
	OMP_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children 2
	$(PY) benchmarks/mutmut_summary.py --out benchmarks/results/mutmut

clean:
	rm -rf $(VENV) demo runs
