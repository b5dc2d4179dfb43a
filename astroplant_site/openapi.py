"""Additions to the generated OpenAPI schema, so that it lists every response the API can give."""


def add_common_error_responses(result, generator, request, public):
    """Answers any operation may give that drf-spectacular cannot know of: 401 for a token that
    is invalid or expired (even where no sign-in is needed), 415 for a body that is not JSON,
    429 for a caller over its request rate (astroplant_site.api's throttles)."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    result.setdefault("components", {}).setdefault("responses", {})["TooManyRequests"] = {
        "description": "Too many requests: wait as Retry-After says.",
        "headers": {
            "Retry-After": {
                "schema": {"type": "integer", "minimum": 1},
                "description": "Seconds to wait before trying again.",
            }
        },
        "content": error,
    }
    for path, path_item in result.get("paths", {}).items():
        if not path.startswith(("/kits", "/auth/")):
            continue
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            operation["responses"].setdefault(
                "401", {"description": "The token sent is invalid or expired: sign in again.", "content": error}
            )
            operation["responses"].setdefault("429", {"$ref": "#/components/responses/TooManyRequests"})
            if "requestBody" in operation:
                operation["responses"].setdefault(
                    "415",
                    {"description": "The body is not JSON (send Content-Type: application/json).", "content": error},
                )
    return result


def forbid_unknown_request_fields(result, generator, request, public):
    """Every request body refuses fields it does not know (astroplant_site.api.StrictInputSerializer):
    the schema says so with `additionalProperties: false` on each body and each object in it."""
    components = result.get("components", {}).get("schemas", {})
    seen: set[str] = set()

    def close(schema: dict) -> None:
        reference = schema.get("$ref", "")
        if reference:
            name = reference.rsplit("/", 1)[-1]
            if name not in seen and name in components:
                seen.add(name)
                close(components[name])
            return
        if schema.get("type") == "object" and "properties" in schema:
            schema["additionalProperties"] = False
        nested = list(schema.get("properties", {}).values())
        if "items" in schema:
            nested.append(schema["items"])
        for part in nested:
            close(part)

    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                for content in operation.get("requestBody", {}).get("content", {}).values():
                    close(content.get("schema", {}))
    return result
