# The OpenAPI document's test (Tests/IntegrationTests/OpenAPITests.swift) runs PyPI's schemathesis
# against the running daemon, from a venv of the project's, never the system's Python:
#
#   make openapi-venv    make the venv (.build-openapivenv) from scripts/openapi/requirements.txt
#   make openapi-check   build, then only that test (about a minute)
#
# `make test` passes APHERESISD_OPENAPI_PYTHON=$(OPENAPI_VENV)/bin/python to the tests.

OPENAPI_VENV := $(CURDIR)/.build-openapivenv

.PHONY: openapi-venv openapi-check

openapi-venv:
	@python3 -c 'import ensurepip' 2>/dev/null || { echo "Installing Debian package python3-venv"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv; }
	@test -x $(OPENAPI_VENV)/bin/python || python3 -m venv $(OPENAPI_VENV)
	@want=$$(sed -n 's/^schemathesis==//p' scripts/openapi/requirements.txt); \
	have=$$($(OPENAPI_VENV)/bin/python -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null); \
	test "$$have" = "$$want" || $(OPENAPI_VENV)/bin/pip install -q -r scripts/openapi/requirements.txt

openapi-check: deps openapi-venv
	$(SWIFT) build --build-tests
	APHERESISD_OPENAPI_PYTHON=$(OPENAPI_VENV)/bin/python $(SWIFT) test --skip-build --disable-xctest \
		--filter 'OpenAPITests|OpenAPIDocumentTests'
