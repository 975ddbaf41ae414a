# r1data: `make quickstart` sets up and runs the quickstart; `make test` sets up and runs the tests.
.PHONY: setup quickstart test test-all test-fast lint clean

setup:
	bash scripts/setup.sh

quickstart: setup
	bash scripts/quickstart.sh

test:
	R1DATA_TEST_DEPS=1 bash scripts/setup.sh
	.venv/bin/python -m pytest -q -m "not heavy"

test-all:
	R1DATA_TEST_DEPS=1 bash scripts/setup.sh
	.venv/bin/python -m pytest -q

test-fast:
	.venv/bin/python -m pytest -q -m "not slow"

lint:
	.venv/bin/ruff check .

clean:
	rm -rf .venv .cache stores models
