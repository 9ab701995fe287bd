# The two commands of the README. Each one installs what it needs first
# (tools/install.sh is idempotent: seconds when the environment is current).
VENV ?= .venv
PY := $(VENV)/bin/python
export XFM_VENV := $(abspath $(VENV))
export PYTHONUNBUFFERED := 1

.PHONY: env demo test
env:
	bash tools/install.sh

demo: env
	bash tools/run_demo.sh

test: env
	$(PY) -m pytest tests -q -p no:cacheprovider
