# medtext: two commands for a fresh clone (with ../shared beside it)
#   make demo   create .venv, install, run the default preset over corpora/samples
#   make test   run the test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= -q --disable-pip-version-check
EXTRAS ?= dev
MEDTEXT_HOME ?= $(HOME)/.cache/medtext
export MEDTEXT_HOME
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: demo test test-fast install install-trf pdfs bench assets info clean terminology embed-index train-ner train-ner-trf train-linker train-linker-clf train-linker-clf-trf train-linker-clf-ft train-layout train-layout-trf train-relations train-relations-trf train-errors screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install when the package metadata or the pins change.
$(VENV)/.installed-$(EXTRAS): pyproject.toml requirements/constraints.txt | $(BIN)/python
	$(BIN)/pip install $(PIP_FLAGS) -c requirements/constraints.txt -e '.[$(EXTRAS)]'
	@touch $@

install: $(VENV)/.installed-$(EXTRAS)

# The full transformer stack (torch CPU wheel 2.13.0, spacy-transformers, sentence-transformers)
# and pyspark (the Spark backend's tests).
install-trf:
	$(MAKE) install EXTRAS=dev,trf,spark

# The default preset's terminology matcher needs the default index (built offline in ~10 s).
TERM_INDEX := $(MEDTEXT_HOME)/terminologies/default/metadata.json
$(TERM_INDEX): | $(VENV)/.installed-$(EXTRAS)
	$(BIN)/medtext terminology build default

terminology: install
	$(BIN)/medtext terminology build default

# The statistical CNN NER of the "default" preset: two taggers (seeds 0 and 1) averaged, as
# shipped (CPU, about 10-25 min each here; --ensemble 1 trains one).
train-ner: install
	$(BIN)/medtext train ner

# The transformer tagger of the "trf" preset, averaged with default's CNN taggers
# (all-MiniLM-L6-v2; about 70 min on 2 CPUs, minutes on a GPU: add GPU=--gpu-id 0).
train-ner-trf: install-trf
	$(BIN)/medtext train ner --arch trf --max-steps 1000 --eval-frequency 200 $(GPU)

# The trf preset's dense candidates: every synonym of the default index embedded with the
# packaged all-MiniLM-L6-v2 (about 2 min on 2 CPUs).
embed-index: install-trf $(TERM_INDEX)
	$(BIN)/medtext terminology embed --model all-MiniLM-L6-v2

# The linker's fine-tuned bi-encoder and cross-encoder; re-embeds the default index.
train-linker: install-trf $(TERM_INDEX)
	$(BIN)/medtext train linker

# The linker's mention classifier on the team's ICF train + dev mentions (numpy, about 8 min
# on 2 CPUs with 7,312 examples; a trained copy ships in medtext/models/linker_clf, this replaces it under
# $(MEDTEXT_HOME)/models/linker_clf).
train-linker-clf: install
	$(BIN)/medtext train linker-clf

# The trf preset's mention classifier: the same with each mention's all-MiniLM-L6-v2 embedding
# as features (about 10 min on 2 CPUs), into $(MEDTEXT_HOME)/models/linker_clf_trf.
train-linker-clf-trf: install-trf
	$(BIN)/medtext train linker-clf --encoder all-MiniLM-L6-v2

# A mention classifier that fine-tunes all-MiniLM-L6-v2 with a linear layer (4 epochs, about
# 10 min on 2 CPUs), into $(MEDTEXT_HOME)/models/linker_clf_ft.
train-linker-clf-ft: install-trf
	$(BIN)/medtext train linker-clf --finetune

# The layout classifier on synthetic letters (a few minutes on CPU; a trained copy ships in
# medtext/models/layout, this replaces it under $(MEDTEXT_HOME)/models/layout).
train-layout: install
	$(BIN)/medtext train layout

# Opt-in layout model: the same classifier also reading a frozen all-MiniLM-L6-v2 embedding of
# each line (a few minutes on CPU; no presets use it, see README "Layout filtering").
train-layout-trf: install-trf
	$(BIN)/medtext train layout --text-encoder all-MiniLM-L6-v2

# The radiology preset's RadGraph entity + relation models on the team's reports (about 4 min).
train-relations: install
	$(BIN)/medtext train relations

# The radiology_trf preset's models: all-MiniLM-L6-v2 under the RadGraph NER and relations
# (minutes on a GPU with GPU=--gpu-id 0; see README for the CPU time).
train-relations-trf: install-trf
	$(BIN)/medtext train relations --arch trf $(GPU)

# medtext_errors' sentence classifier on MEDEC-MS validation (../shared/data) + the team's injected
# errors (about 5 min on 2 CPUs); use it with medtext_errors.classifier = "medtext:errors_cross".
train-errors: install-trf
	$(BIN)/medtext train errors

demo: install $(TERM_INDEX)
	$(BIN)/medtext run corpora/samples -o out/demo --overwrite
	@$(BIN)/medtext summary out/demo

# Tests run with the trf extra, so the linker's dense, cross-encoder and training paths are
# exercised (with tiny models built in the tests).
test: install-trf
	$(BIN)/python -m pytest

test-fast: install-trf
	$(BIN)/python -m pytest -m "not slow"

# Re-render the sample PDFs (deterministic; the committed ones are the output of this).
pdfs: install
	$(BIN)/python -m medtext.corpora.render_pdfs

# The README's viewer screenshots (docs/img/): the patient preset over the samples, the radiology
# preset over the chest X-rays and CTs, `medtext render`-style pages shot in headless Chromium
# (Debian: apt-get install chromium).
RADGRAPH := $(MEDTEXT_HOME)/models/radgraph/meta.json
$(RADGRAPH): | $(VENV)/.installed-$(EXTRAS)
	$(BIN)/medtext train relations

screenshots: install-trf $(TERM_INDEX) $(RADGRAPH)
	$(BIN)/medtext run corpora/samples -o out/screens/patient --preset patient --overwrite -q
	$(BIN)/medtext run $(wildcard corpora/samples/cxr_*.txt corpora/samples/ct_*.txt) -o out/screens/radiology \
		--preset radiology --overwrite -q
	$(BIN)/python scripts/screenshots.py --records out/screens/patient/records.jsonl \
		--radiology-records out/screens/radiology/records.jsonl --out-dir docs/img

bench: install
	$(BIN)/python benchmarks/sample_throughput.py

assets: install
	$(BIN)/python -m weasel assets

info: install
	$(BIN)/medtext info

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache
