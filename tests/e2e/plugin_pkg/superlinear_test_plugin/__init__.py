"""A third-party superlinear plugin, as a package would ship it: one stop rule and one HTTP route.

The e2e tests install it through an entry point (a `*.dist-info/entry_points.txt` on PYTHONPATH).
"""

from superlinear.core.ports import Verdict
from superlinear.plugins import hookimpl

__all__ = ["TRIGGER", "ROUTE", "CutAfterThree", "cut_after_three", "Echo"]

# The rule only acts on requests that ask for it through a stop string that never occurs in text.
TRIGGER = "\x00plugin-test:cut-after-3"
ROUTE = "/v1/plugin-test/echo"


class CutAfterThree:
    """End the answer after its third token and drop all of its text (held back until then, so none leaks)."""

    def __init__(self):
        self.seen = 0

    def observe(self, token_id, text):
        self.seen += 1
        if self.seen >= 3:
            return Verdict(stop=True, reason="stop", trim=len(text))
        return Verdict(hold=len(text))


def cut_after_three(params):
    return CutAfterThree() if TRIGGER in params.stop else None


class Echo:
    """Answer with what the plugin knows about the request."""

    def on_get(self, req, resp):
        resp.media = {"plugin": "superlinear_test_plugin", "path": req.path}

    def on_post(self, req, resp):
        resp.media = {"plugin": "superlinear_test_plugin", "body": req.get_media()}


@hookimpl
def superlinear_stop_rules(register):
    register("test_plugin.cut_after_three", cut_after_three)


@hookimpl
def superlinear_http_routes(register):
    register(ROUTE, Echo())
