"""openapi.yaml documents what every authenticated operation may answer
besides its own: 403 FORBIDDEN (the token's scope) and 429 RATE_LIMITED
with an integer Retry-After, both Failures."""

from __future__ import annotations

from tests.support.openapi import load_document


def test_every_operation_with_a_token_documents_403_and_429() -> None:
    document = load_document()
    responses = document["components"]["responses"]
    operations = [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    ]
    failure = {"$ref": "#/components/schemas/Failure"}
    assert responses["Forbidden"]["content"]["application/json"]["schema"] == failure
    assert responses["RateLimited"]["content"]["application/json"]["schema"] == failure
    assert responses["RateLimited"]["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}
    for method, path, operation in operations:
        if "401" not in operation["responses"]:
            continue  # no token asked for
        assert operation["responses"]["403"] == {"$ref": "#/components/responses/Forbidden"}, (method, path)
        assert operation["responses"]["429"] == {"$ref": "#/components/responses/RateLimited"}, (method, path)
    reasons = document["components"]["schemas"]["Failure"]["properties"]["error"]["properties"]["reason"]
    assert "`FORBIDDEN`" in reasons["description"] and "`RATE_LIMITED`" in reasons["description"]
