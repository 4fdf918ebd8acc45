# vetrina: `make demo` and `make test` each set themselves up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU wheel of PyTorch that lies on this project's machines; any other version
# would download a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
EXTRAS ?= cpu,convert,test,dev
STAMP  := $(VENV)/.vetrina-installed

.PHONY: demo test lint build clean

$(STAMP): pyproject.toml setup.py $(wildcard kernels/*.pyx kernels/*.pxd kernels/*.pxi)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

build: $(STAMP)

demo: $(STAMP)
	$(BIN)/vetrina demo --output demo-output

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

clean:
	rm -rf build *.egg-info kernels/*.c kernels/*.so demo-output
