"""The plugin's endpoints in Kinto's ``/__api__``: a valid OpenAPI 2.0 document that says
what each endpoint takes and answers, checked against the real answers."""

import jsonschema
import pytest
from openapi_spec_validator.validation.validators import OpenAPIV2SpecValidator

BUCKET = "/v1/buckets/blog"
COLLECTION = f"{BUCKET}/collections/articles"
RECORDS_PATH = "/buckets/{bucket_id}/collections/{collection_id}/records"
COLLECTION_SEARCH = "/buckets/{bucket_id}/collections/{collection_id}/search"
FACETS = "/buckets/{bucket_id}/collections/{collection_id}/search/facets"
BUCKET_SEARCH = "/buckets/{bucket_id}/search"

OPERATIONS = {
    "search_collection": (COLLECTION_SEARCH, "post"),
    "get_collection_search": (COLLECTION_SEARCH, "get"),
    "get_collection_search_facets": (FACETS, "get"),
    "search_bucket": (BUCKET_SEARCH, "post"),
    "get_bucket_search": (BUCKET_SEARCH, "get"),
}
KINTO_LIST_PARAMETERS = {"_limit", "_sort", "_token", "_fields", "_since", "_before", "id"}


@pytest.fixture
def spec(app):
    return app.get("/v1/__api__").json


def _operation(spec, operation_id):
    path, method = OPERATIONS[operation_id]
    return spec["paths"][path][method]


def test_the_document_is_valid_openapi_2(spec):
    assert list(OpenAPIV2SpecValidator(spec).iter_errors()) == []
    found = {
        operation["operationId"]
        for path in (COLLECTION_SEARCH, FACETS, BUCKET_SEARCH)
        for operation in spec["paths"][path].values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    assert found == set(OPERATIONS)


@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_every_operation_documents_its_answers_in_kintos_error_schema(spec, operation_id):
    operation = _operation(spec, operation_id)
    responses = operation["responses"]
    assert "UNDOCUMENTED RESPONSE" not in str(responses)
    assert responses["200"]["schema"]["type"] == "object"
    # Kinto's own error schema, as its records endpoint documents it.
    kinto_error = spec["paths"][RECORDS_PATH]["get"]["responses"]["400"]["schema"]
    expected = {"400", "401", "403", "503"}
    if "bucket" not in operation_id:
        expected.add("404")
    for status in expected:
        assert responses[status]["schema"] == kinto_error, status
    assert operation["tags"] == ["Search"]


@pytest.mark.parametrize("operation_id", ["get_collection_search", "get_bucket_search"])
def test_get_search_documents_kintos_querystring_and_paging(spec, operation_id):
    operation = _operation(spec, operation_id)
    parameters = {p["name"]: p for p in operation["parameters"]}
    search_box = {"q", "_q_fields", "_q_operator", "_fuzzy", "_prefix", "_highlight"}
    assert KINTO_LIST_PARAMETERS | search_box <= set(parameters)
    assert all(p["in"] == "query" for p in parameters.values())
    assert parameters["_limit"]["type"] == "integer"
    # The same parameters as Kinto's own GET .../records.
    records = {p["name"]: p for p in spec["paths"][RECORDS_PATH]["get"]["parameters"]}
    for name in KINTO_LIST_PARAMETERS:
        assert parameters[name] == records[name], name
    headers = operation["responses"]["200"]["headers"]
    assert {"Total-Objects", "Next-Page"} <= set(headers)


@pytest.mark.parametrize("operation_id", ["search_collection", "search_bucket"])
def test_post_search_documents_its_body(spec, operation_id):
    (body,) = [p for p in _operation(spec, operation_id)["parameters"] if p["in"] == "body"]
    properties = body["schema"]["properties"]
    assert {"query", "size", "from", "sort", "aggs", "_source", "search_after"} <= set(properties)
    assert body["schema"]["additionalProperties"] == {}
    assert body["required"] is False


class GeneratedClient:
    """What a client generated from the document does: the operation's path and method,
    path parameters filled in, the rest as querystring or body; every answer is checked
    against the schema the document gives for its status."""

    def __init__(self, app, spec, headers):
        self.app, self.spec, self.headers = app, spec, headers

    def call(self, operation_id, path_params, query=None, body=None, status=200):
        path, method = OPERATIONS[operation_id]
        operation = self.spec["paths"][path][method]
        names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        assert set(query or {}) <= names, "parameters the document does not list"
        url = self.spec["basePath"] + path.format(**path_params)
        if method == "post":
            response = self.app.post_json(url, body or {}, headers=self.headers, status=status)
        else:
            response = self.app.get(url, query or {}, headers=self.headers, status=status)
        documented = operation["responses"][str(status)]
        jsonschema.Draft4Validator(documented["schema"]).validate(response.json)
        for header in documented.get("headers", {}):
            if header != "Next-Page":
                assert header in response.headers, header
        return response


@pytest.fixture
def client(app, spec, alice):
    app.put_json(BUCKET, {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    for i in range(3):
        record = {"title": f"hello {i}", "n": i, "tags": ["a", "b"]}
        app.put_json(f"{COLLECTION}/records/r{i}", {"data": record}, headers=alice)
    return GeneratedClient(app, spec, alice)


def test_a_generated_client_can_search_and_gets_what_the_document_says(client):
    ids = {"bucket_id": "blog", "collection_id": "articles"}
    body = {"query": {"match": {"title": "hello"}}, "aggs": {"n": {"terms": {"field": "n"}}}}
    hits = client.call("search_collection", ids, body=body).json["hits"]
    assert hits["total"]["value"] == 3
    query = {"q": "helo", "_fuzzy": "true", "_highlight": "title", "_limit": 2}
    page = client.call("get_collection_search", ids, query=query)
    assert page.headers["Total-Objects"] == "3" and "Next-Page" in page.headers
    assert len(page.json["hits"]["hits"]) == 2
    facets = client.call("get_collection_search_facets", ids, query={"limit": 5}).json
    assert {f["name"] for f in facets["fields"]} >= {"n", "title"}
    bucket = client.call("search_bucket", {"bucket_id": "blog"}, body={"size": 1}).json
    assert bucket["hits"]["hits"][0]["_collection"] == "articles"
    client.call("get_bucket_search", {"bucket_id": "blog"}, query={"_sort": "n"})


def test_a_generated_client_gets_the_documented_errors(client):
    ids = {"bucket_id": "blog", "collection_id": "articles"}
    client.call("search_collection", ids, body={"query": {"script": {}}}, status=400)
    client.call("get_collection_search", ids, query={"_limit": "x"}, status=400)
    client.call("get_collection_search_facets", ids, query={"limit": 1000}, status=400)
    missing = {"bucket_id": "blog", "collection_id": "nope"}
    client.call("search_collection", missing, status=404)
    client.call("get_collection_search_facets", missing, status=404)
    client.headers = {}
    client.call("get_collection_search", ids, status=401)
    client.call("search_bucket", {"bucket_id": "blog"}, status=401)


def test_a_generated_client_gets_the_documented_503(make_app, alice):
    app = make_app(**{"elasticsearch.hosts": "http://127.0.0.1:1"})
    app.put_json(BUCKET, {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    client = GeneratedClient(app, app.get("/v1/__api__").json, alice)
    ids = {"bucket_id": "blog", "collection_id": "articles"}
    client.call("search_collection", ids, status=503)
    client.call("get_collection_search", ids, status=503)
    client.call("get_collection_search_facets", ids, status=503)
