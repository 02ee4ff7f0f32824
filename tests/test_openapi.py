"""The OpenAPI 3.1 document describes exactly the API's routes and refers to the published JSON Schemas."""

import re

import schemas
from registry import create_app


def _api_routes():
    app = create_app({"INSTANCE_PATH": "/tmp/registry-route-listing", "SECRET_KEY": "x", "DATABASE_URL": "sqlite://"})
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                found.add((method.lower(), path))
    return found


def test_every_api_route_is_described_and_every_description_is_a_route(app):
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    described = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "patch", "put", "delete"}
    }
    assert described == _api_routes()


def test_request_bodies_refer_to_the_published_schemas_and_those_urls_answer(app):
    client = app.test_client()
    document = client.get("/api/v1/openapi.json").get_json()
    create = document["paths"]["/api/v1/filings"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create == {"$ref": "/schemas/filing.json"}
    for name in schemas.NAMES:
        response = client.get(f"/schemas/{name}.json")
        assert response.status_code == 200
        assert response.get_json()["$id"] == schemas.load(name)["$id"]
        assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_the_schema_index_lists_every_schema(app):
    items = app.test_client().get("/schemas/").get_json()["items"]
    assert [i["name"] for i in items] == list(schemas.NAMES)


def test_the_lifecycle_endpoint_publishes_the_table(app):
    body = app.test_client().get("/api/v1/lifecycle").get_json()
    submit = next(t for t in body["transitions"] if t["action"] == "submit")
    assert submit == {
        "action": "submit",
        "from": ["draft"],
        "to": "submitted",
        "by": ["city"],
        "reason_required": False,
    }
