# The two commands of the course (see README):
#   make book   set up .venv and build the book, executing every chapter
#   make test   set up .venv and run the whole test suite
# Both need only Python 3.11 on the machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup book test lint exercises clean browser-test

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v == (3, 11) else "llmcourse needs Python 3.11 (the torch 2.13.0 CPU wheel is built for it); got %d.%d. Run: make PYTHON=python3.11 ..." % v)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

book: $(STAMP)
	# TQDM_DISABLE: progress bars are for people running a notebook, not for the pages
	PYTHONHASHSEED=0 TQDM_DISABLE=1 $(BIN)/jupyter-book build --all --warningiserror --keep-going .

test: $(STAMP)
	PYTHONHASHSEED=0 $(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

browser-test: $(STAMP)
	$(BIN)/pip install --quiet -r requirements-browser.txt
	test -f _build/html/index.html || $(MAKE) book
	PYTHONHASHSEED=0 $(BIN)/pytest -v -s browser_tests

exercises: $(STAMP)
	$(BIN)/llmcourse exercises

clean:
	rm -rf _build $(VENV)
