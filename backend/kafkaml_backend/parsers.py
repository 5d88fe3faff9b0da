"""Request bodies parsed within bounds: JSON nested at most `MAX_REQUEST_JSON_DEPTH` deep.

(The size of a body is bounded before any parser runs: middleware.BodySizeLimitMiddleware.)"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from kafkaml.nesting import json_text_depth

# Deeper than any JSON field the API stores (those refuse more than 32 levels with a field
# error), shallow enough that parsing and validating cannot hit Python's recursion limit.
MAX_REQUEST_JSON_DEPTH = 64


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser (strict: no NaN or Infinity), refusing a body nested deeper than
    MAX_REQUEST_JSON_DEPTH with ParseError (400) before parsing it."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        body = stream.read()
        depth = json_text_depth(body)
        if depth > MAX_REQUEST_JSON_DEPTH:
            raise ParseError(
                f"JSON parse error - the body nests {depth} deep, deeper than "
                f"{MAX_REQUEST_JSON_DEPTH}."
            )
        return super().parse(io.BytesIO(body), media_type, parser_context)
