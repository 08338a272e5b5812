"""Schemathesis over /openapi.json, in-process against the WSGI app on the core's fakes.

Every generated request, valid or not, must get a documented status, never a 5xx, and a body that
matches the documented schema (the error object included).
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from superlinear.core import Engine, SessionService
from superlinear.core.testing import FakeModel, FakeTokenizer, FixedClock, SequentialIds
from superlinear.frontends.http import AppOptions, Limits, ServiceHolder, Services, create_app
from superlinear.frontends.http.compose import stop_rule_source
from superlinear.plugins import build_plugin_manager
from superlinear.storage import MemorySnapshotStore

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]


class ExampleIds(SequentialIds):
    """Name the first snapshot with the document's example id, so the fuzzer's examples hit a real one."""

    def new_id(self, prefix: str) -> str:
        fresh = super().new_id(prefix)
        return "764cb17e" if prefix == "" and self.n == 1 else fresh


@pytest.fixture(scope="module")
def app_schema():
    """The app over fakes, loaded as a schemathesis schema; its engine thread stops after the module."""
    model = FakeModel(FakeTokenizer(), reply_len=4)
    sessions = SessionService(
        model=model, tok=model.tok, engine=Engine().start(), store=MemorySnapshotStore(), clock=FixedClock(),
        ids=ExampleIds(), stop_rules=stop_rule_source(build_plugin_manager(load_entrypoints=False)),
        entropy=lambda: 7, default_max_seq_len=512)
    services = Services(sessions=sessions, model_name="fake", default_max_tokens=16)
    holder = ServiceHolder(lambda: services, background=False)
    # The document's example ids name a real session and snapshot, so some requests reach real things.
    sessions.create("my-chat")
    sessions.save("my-chat", title="seed")
    # A roomy body cap: a huge invalid body gets 413 before validation, which is right but not what this tests.
    app = create_app(holder, AppOptions(load_plugins=False, limits=Limits(max_body_bytes=1 << 22)))
    yield schemathesis.openapi.from_wsgi("/openapi.json", app)
    sessions.engine.stop()


def _fuzz(operation, mode: GenerationMode) -> bool:
    """Run the checks on generated cases; False when the mode has nothing to generate (no input to negate)."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case):
        case.call_and_validate(checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        return False
    return True


# One hypothesis run per operation and mode, driven here rather than by schemathesis' pytest plugin, which
# reaches into pytest internals that change between pytest releases.
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_no_request_breaks_the_server(app_schema, mode):
    operations = [result.ok() for result in app_schema.get_all_operations()]
    labels = {operation.label for operation in operations}
    assert {"GET /health", "POST /v1/chat/completions", "POST /v1/sessions"} <= labels, labels
    fuzzed = [operation.label for operation in operations if _fuzz(operation, mode)]
    # Routes without parameters or body have nothing to negate; every route with input must be fuzzed.
    assert len(fuzzed) >= len(operations) // 2, fuzzed
