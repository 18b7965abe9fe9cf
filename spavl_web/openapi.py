"""What the OpenAPI schema says beyond what drf-spectacular infers: the token scheme, and the
error answers every operation can give (401, 403, 404; 400 where it takes input)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

ERROR = {"$ref": "#/components/schemas/Error"}
ERRORS = {
    "401": "No valid credentials: send `Authorization: Token <secret>` or a session cookie.",
    "403": "The token lacks the scope this operation needs.",
    "404": "Not found, or not yours: the same answer, so nobody learns what exists.",
}
BAD_INPUT = "Invalid input: the body names each field that is wrong and why."


class ScopedTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "spavl_web.tokens.ScopedTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <secret>`: a scoped, expiring token (see /api/v1/tokens/).",
        }


def add_error_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """A drf-spectacular post-processing hook: every operation lists its error answers."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        "Error",
        {
            "type": "object",
            "properties": {"detail": {"type": "string"}},
            "additionalProperties": True,
            "description": "`detail`, or one list of messages per field that is wrong.",
        },
    )
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            _say_no_nul(operation.get("parameters", []))
            responses = operation.setdefault("responses", {})
            takes_input = "requestBody" in operation or any(
                parameter.get("in") == "query" for parameter in operation.get("parameters", [])
            )
            wanted = dict(ERRORS) | ({"400": BAD_INPUT} if takes_input else {})
            for code, description in wanted.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": ERROR}},
                    },
                )
    return result


# DRF refuses a NUL character in any CharField (PostgreSQL text cannot hold one): say so.
NO_NUL = "^[^\\u0000]*$"


def _say_no_nul(parameters: list[dict[str, Any]]) -> None:
    for parameter in parameters:
        schema = parameter.get("schema", {})
        if schema.get("type") == "string" and not {"pattern", "enum", "format"} & set(schema):
            schema["pattern"] = NO_NUL
