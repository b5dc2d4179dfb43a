"""Additions to the generated OpenAPI schema, so that it lists every response the API can give."""


def add_common_error_responses(result, generator, request, public):
    """Answers any operation may give that drf-spectacular cannot know of: 401 for a token that
    is invalid or expired (even where no sign-in is needed), 415 for a body that is not JSON."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, path_item in result.get("paths", {}).items():
        if not path.startswith(("/kits", "/auth/")):
            continue
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            operation["responses"].setdefault(
                "401", {"description": "The token sent is invalid or expired: sign in again.", "content": error}
            )
            if "requestBody" in operation:
                operation["responses"].setdefault(
                    "415",
                    {"description": "The body is not JSON (send Content-Type: application/json).", "content": error},
                )
    return result
