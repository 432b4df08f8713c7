# Rapport: `make run` starts the server, `make test` runs every check.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PYTEST_ARGS ?=
# 1 (as .ci/run sets) turns every skipped test into a failure, so CI cannot pass with Chromium, fer or the netns missing.
RAPPORT_STRICT_TESTS ?=
export RAPPORT_STRICT_TESTS
# WebRTC needs a loopback address aioice accepts (127.0.0.2) and no route out: a private netns.
NETNS := unshare -rn sh -c 'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$$0" "$$@"'

.PHONY: run test lint typecheck pytest setup system-deps bench soak fuzz docs clean

# --demo: on a first start, make demo staff accounts and print their passwords once (data/demo-accounts.txt).
run: setup
	$(UV) run --frozen rapport serve --demo $(ARGS)

test: setup system-deps lint typecheck pytest

setup:
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
	$(UV) sync --frozen --all-extras

system-deps:
	@bash .ci/system-deps

lint:
	$(UV) run --frozen ruff check server emotion tests bench
	$(UV) run --frozen ruff format --check server emotion tests bench

typecheck:
	$(UV) run --frozen mypy

pytest:
	@if $(NETNS) true 2>/dev/null; then \
		echo "running tests in a private network namespace"; \
		$(NETNS) .venv/bin/python -m pytest $(PYTEST_ARGS); \
	else \
		echo "unshare unavailable: WebRTC and browser tests will be skipped (failed under RAPPORT_STRICT_TESTS=1)"; \
		.venv/bin/python -m pytest $(PYTEST_ARGS); \
	fi

# Call capacity per media path, the emotion detector's cost, its worker's memory and start-up and `make run`'s venv,
# cue latency through a real call, what a listening supervisor costs and how soon a flagged call reaches the floor,
# and what checking and encoding a WebSocket message costs (bench/README.md). The bench group comes first: pydantic,
# and full TensorFlow for fer's own FER, the baseline of bench/emotion.py and bench/emotion_worker.py.
bench: setup
	$(UV) sync --frozen --all-extras --group bench
	$(NETNS) .venv/bin/python -m bench.calls --pin split
	.venv/bin/python bench/emotion.py
	.venv/bin/python bench/emotion_worker.py
	$(NETNS) .venv/bin/python bench/cue_latency.py
	$(NETNS) .venv/bin/python bench/networks.py
	$(NETNS) .venv/bin/python bench/assist.py
	.venv/bin/python bench/validation.py
	$(NETNS) .venv/bin/python bench/signalling.py

# 1,000 short calls through one `rapport serve` (4 at a time, about 25 minutes), sampling every server process's RSS,
# fds, threads, asyncio tasks and UDP sockets; fails on growth (README, "Soak"). Not in `make bench`: too long.
# SOAK_ARGS="--calls 100" for a quick look, "--inspect DIR" for what each process holds.
SOAK_ARGS ?=
soak: setup
	$(NETNS) .venv/bin/python bench/soak.py $(SOAK_ARGS)

# 10,000+ hostile HTTP requests, WebSocket messages and SDP offers against a server process, with a bystander
# call (README, "Fuzzing"); FUZZ_ARGS="--inputs 20000 --seed 7 --logs fuzz-logs" for more, another seed, logs.
FUZZ_ARGS ?=
fuzz: setup
	$(NETNS) .venv/bin/python -m tests.fuzz $(FUZZ_ARGS)

# Documents generated from the code; tests fail when a committed one is stale.
docs: setup
	.venv/bin/python -m server.http.openapi docs/openapi.json
	.venv/bin/python -m server.signalling.protocol_doc

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache artifacts
