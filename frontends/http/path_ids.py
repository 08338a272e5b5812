"""Ids in URL paths (`{session_id}`, `{snapshot_id}`): one field type each, checked once for every route.

The same table writes the path parameters of /openapi.json, so the check and its schema stay one.
"""

from __future__ import annotations

from .fields import FieldType, Id

__all__ = ["PATH_IDS", "PathIds"]

# Path parameter name -> its field type; a bad one is the 400 naming the parameter.
PATH_IDS: dict[str, FieldType] = {"session_id": Id(), "snapshot_id": Id()}


class PathIds:
    """Falcon middleware: check a matched route's id parameters before its resource runs (plugin routes too)."""

    def process_resource(self, req, resp, resource, params):
        for name, value in params.items():
            kind = PATH_IDS.get(name)
            if kind is not None:
                kind.check(value, name)
