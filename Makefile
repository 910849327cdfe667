# The two commands of the README:
#   make demo   install into .venv and deface the built-in synthetic patient
#   make test   install the three test environments and run every test
VENV        ?= .venv
VENV58      ?= .venv-slicer58
VENVCORE    ?= .venv-slicercore
DEMO        ?= demo-output
PYTEST_ARGS ?=

.PHONY: demo test install install58 installcore lint test-latest test-slicer58 test-slicercore bench clean

install:
	@scripts/system_deps.sh
	@scripts/make_env.sh $(VENV) requirements/latest.txt 3.12

install58:
	@scripts/system_deps.sh
	@scripts/make_env.sh $(VENV58) requirements/slicer58.txt 3.9

# Slicer 5.12's Qt-free MRML (Kitware's slicer-core wheel, its own vtk 9.6.0): the Slicer modules' tests
installcore:
	@scripts/make_env.sh $(VENVCORE) requirements/slicercore.txt 3.12

demo: install
	rm -rf $(DEMO)
	$(VENV)/bin/defacert phantom $(DEMO)/original
	$(VENV)/bin/defacert deface $(DEMO)/original $(DEMO)/defaced --pseudonym-map $(DEMO)/pseudonyms.csv
	$(VENV)/bin/defacert render $(DEMO)/original $(DEMO)/render-original.png
	$(VENV)/bin/defacert render $(DEMO)/defaced $(DEMO)/render-defaced.png
	$(VENV)/bin/defacert face-distance --same-frame $(DEMO)/original $(DEMO)/defaced
	@echo "demo output in $(DEMO)/ (defaced DICOM, summary JSON, QA figure, renders)"

lint: install
	$(VENV)/bin/ruff check .

test-latest: install
	$(VENV)/bin/python -m pytest -n 2 -q $(PYTEST_ARGS)

test-slicer58: install58
	scripts/with_display.sh $(VENV58)/bin/python -m pytest -n 2 -q $(PYTEST_ARGS)

# only the slicercore-marked tests run there; DEFACERT_SLICERCORE=1 makes a missing slicer-core an error
test-slicercore: installcore
	DEFACERT_SLICERCORE=1 $(VENVCORE)/bin/python -m pytest -n 2 -q -m slicercore $(PYTEST_ARGS) $(wildcard Testing/test_slicercore_*.py)

# installcore first: test-latest checks (under CI=true) that the slicer-core environment exists
test: installcore lint test-latest test-slicer58 test-slicercore

bench: install
	for b in benchmarks/bench_*.py; do $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(VENV58) $(VENVCORE) $(DEMO)
