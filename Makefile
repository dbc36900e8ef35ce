# hazard-gateway — the two commands of the quick start are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.demo-installed
SYSTEM_TOOLS := mosquitto victoria-metrics socat docker-compose nats-server chromium
# fonts-wqy-microhei: Chinese glyphs for the console's rule titles in browser screenshots
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc

.PHONY: demo test test-fast check lint typecheck bench system-deps venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The demo needs only the package and its `demo` extra (rich, amqtt), not the dev tools.
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $(DEMO_STAMP)

## Run the demo: simulators (gas-leak), embedded MQTT broker, gateway, live view.
demo: $(DEMO_STAMP)
	$(BIN)/hazardgw demo $(ARGS)

## Install what the integration tests need (as root, when missing) and run every test.
system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do \
	  command -v $$t >/dev/null 2>&1 || [ -x /usr/sbin/$$t ] || missing="$$missing $$t"; done; \
	[ -f $(CJK_FONT) ] || missing="$$missing fonts-wqy-microhei"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSTEM_TOOLS) fonts-wqy-microhei; \
	  else echo "missing:$$missing (run as root or install them; their tests will be skipped)"; fi; \
	fi

test: system-deps $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration"

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/rules_bench.py
	$(BIN)/python benchmarks/on_poll_bench.py
	$(BIN)/python benchmarks/gateway_bench.py --seconds 20

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
