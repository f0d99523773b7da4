# Edge Deploy Studio. On a fresh machine: `make demo` and `make test` (both create .venv first).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RKNN_TOOLKIT := rknn-toolkit2==2.5.0
export YOLO_OFFLINE := 1

.PHONY: venv sysdeps board-python test test-fast mutate demo studio lint assets screenshots clean

venv: $(STAMP)  ## create .venv from the pinned recipe (idempotent)

$(STAMP): constraints.txt requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip<26"
	$(BIN)/pip install -q -c constraints.txt -r requirements.txt
	$(BIN)/pip install -q --no-deps $(RKNN_TOOLKIT)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

QT_XCB_LIBS := libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 \
	libxcb-render-util0 libxcb-xinerama0 libxcb-shape0 libegl1 libgl1 fonts-dejavu-core

sysdeps:  ## system packages: Xvfb and Qt's X11 libraries (screenshots), OpenSSH server (board tests)
	@missing=""; \
	command -v Xvfb >/dev/null || missing="$$missing xvfb xauth"; \
	test -x /usr/sbin/sshd || missing="$$missing openssh-server"; \
	for lib in $(QT_XCB_LIBS); do dpkg -s $$lib >/dev/null 2>&1 || missing="$$missing $$lib"; done; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  echo "installing:$$missing"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi

# The stand-in board's Python: 3.9, as on a Debian 11 RK3588 image, with what the agent needs there (and rasterio,
# which a board may have: large GeoTIFFs are then read by windows there).
BOARD_VENV := .venv-board
PYTHON39 ?= $(shell for p in /usr/bin/python3.9 /usr/local/bin/python3.9 $$HOME/.pyenv/versions/3.9*/bin/python3.9; \
	do [ -x "$$p" ] && echo "$$p"; done | tail -1)

board-python: $(BOARD_VENV)/.installed  ## Python 3.9 + numpy, OpenCV, ONNX Runtime for the board tests' agent

$(BOARD_VENV)/.installed:
	@test -n "$(PYTHON39)" || { echo "the board tests need Python 3.9 (a Debian 11 board's): install python3.9 or 'pyenv install 3.9', or pass PYTHON39=path"; exit 1; }
	$(PYTHON39) -m venv $(BOARD_VENV)
	$(BOARD_VENV)/bin/pip install -q "numpy<2" "opencv-python-headless<4.12" "onnxruntime<1.20" "rasterio<1.5"
	@touch $@

# Tests draw offscreen; `make studio` keeps the desktop's own platform.
test test-fast: export QT_QPA_PLATFORM ?= offscreen

# The suite waits on SSH, subprocesses and Qt for about a third of its time, so it runs pytest-xdist workers, one
# per core and one more to use the waits (at most 4: each worker holds torch and its own fixtures); --dist loadfile
# keeps a file's tests on one worker, so a module's fixtures (an RKNN build, a trained student's export) are made
# once. On 2 cores: 1 process 1,028 s, 2 workers 896 s, 3 workers 805 s. TEST_WORKERS=0: one process.
TEST_WORKERS ?= $(shell n=$$(( $$(nproc) + 1 )); echo $$(( n < 4 ? n : 4 )))
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: venv sysdeps lint board-python  ## the whole suite, slow tests included
	$(PYTEST)

test-fast: venv board-python  ## the suite without slow tests (RKNN builds, training, boards over SSH)
	$(PYTEST) -m "not slow"

# One torch thread: mutmut forks a child per mutant, and a child forked after torch started its thread
# pool waits forever on it (every distillation-loss mutant timed out that way). One child per core
# (counted by Python: `nproc` would read OMP_NUM_THREADS and say 1).
mutate: export OMP_NUM_THREADS := 1
mutate: export QT_QPA_PLATFORM ?= offscreen
mutate: venv  ## mutation-test decode, post-/pre-processing, tiling, KD losses, fake-quant (~15 min): out/mutation/report.md
	rm -rf mutants
	$(BIN)/mutmut run --max-children $$($(BIN)/python -c "import os; print(len(os.sched_getaffinity(0)))")
	$(BIN)/python tests/mutation_report.py

demo: venv  ## the whole chain with short budgets (prune, distill, QAT, export, verify, pipeline): out/demo/report.html
	$(BIN)/studio demo

assets: venv  ## rebuild assets/ (synthetic data; student ~70 min, teacher ~2 h, OBB pair ~6 h side by side on 2 cores; resumable)
	$(BIN)/studio assets

XVFB := xvfb-run -a -s "-screen 0 1600x1000x24"
DEMO_ONNX := out/demo/chain/exports/float.onnx

screenshots: venv sysdeps  ## docs/screenshots/*.png under Xvfb: every page, the remote-sensing demo, each wizard step (a real ~7-min run)
	@test -f $(DEMO_ONNX) || $(BIN)/studio demo
	$(XVFB) $(BIN)/python -m studio.gui.screenshots \
		--model assets/models/student.pt --data out/demo/data/data.yaml --onnx $(DEMO_ONNX) \
		--calib out/demo/data/images/train --scene assets/samples/scene_000.jpg $(if $(BOARD),--board $(BOARD))
	$(XVFB) $(BIN)/python -m studio.gui.screenshots --remote-sensing --onnx $(DEMO_ONNX)
	$(XVFB) $(BIN)/python -m studio.gui.screenshots --wizard --data out/demo/data/data.yaml

studio: venv  ## the desktop studio
	$(BIN)/studio gui

lint: venv  ## ruff (py39 syntax for deploy/runtime) and the import contracts
	$(BIN)/ruff check --output-format concise studio deploy tests
	$(BIN)/lint-imports

clean:
	rm -rf out exports runs .pytest_cache mutants
