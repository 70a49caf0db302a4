"""schemathesis against the gateway's own OpenAPI schema: whatever the schema allows a client
to send to either chat endpoint, the gateway answers without a 5xx, with a status the schema
declares, and with a body that matches the schema for that status.

The gateway is routed to the scripted backend's "untagged" model, which answers at once, so
hundreds of generated requests cost seconds, not model time.
"""

import pytest
import schemathesis
from helpers import gateway
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)


@pytest.fixture(scope="module")
def contract_gateway(misbehaving_backend, logs):
    server = gateway(logs, "--backend", "openai", "--backend-url", misbehaving_backend.url + "/v1",
                     "--model", "untagged", "--max-in-flight", "1000")
    yield server
    server.stop()


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.mark.parametrize("path", ["/v1/chat", "/v1/chat/completions"])
def test_chat_endpoints_keep_their_contract(contract_gateway, path):
    # The hypothesis strategy of the operation, not schemathesis' pytest plugin: that plugin's
    # lazy fixtures reach into pytest internals that pytest 9 no longer has.
    schema = schemathesis.openapi.from_url(contract_gateway.url + "/openapi.json")
    strategy = schema[path]["POST"].as_strategy()

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case):
        case.call_and_validate(base_url=contract_gateway.url, timeout=30, checks=CHECKS)

    check()
