# The two commands of the README. Each one installs what it needs first
# (tools/install.sh is idempotent: seconds when the environment is current).
VENV ?= .venv
PY := $(VENV)/bin/python
export XFM_VENV := $(abspath $(VENV))
export PYTHONUNBUFFERED := 1
# The README's commands compute on CPU. DeepSpeed, which mmengine imports
# whenever it is installed, would otherwise print on stdout, in every
# process, that it found no GPU.
export DS_ACCELERATOR ?= cpu

.PHONY: env demo demo-finetune test
env:
	bash tools/install.sh

demo: env
	bash tools/run_demo.sh

# After `make demo`: VQA, grounding, captioning and NLVR2 fine-tunes of the
# demo checkpoint on data written from the demo canvases, each tested.
demo-finetune: env
	bash tools/run_demo_finetunes.sh

test: env
	$(PY) -m pytest tests -q -p no:cacheprovider
