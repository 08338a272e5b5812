"""A short schemathesis run against a real gunicorn spl-server: no generated request gets a 5xx.

The long run (minutes, recorded in the README's Reliability section) is `schemathesis run` by hand; this
keeps a few examples per operation in CI, over the real worker, model and filesystem store.
"""

import schemathesis
from hypothesis import HealthCheck, given, settings


def test_fuzzed_requests_never_get_a_5xx_from_a_real_server(server):
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call(base_url=server, timeout=120)
            if response.status_code >= 500:
                failures.append((case.operation.label, response.status_code, case.body, response.text[:300]))

        check()
    assert not failures, failures
