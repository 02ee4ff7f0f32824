"""The ``schemas`` package: every contract is a well-formed, versioned JSON Schema 2020-12 document."""

import json
import re

import pytest
from jsonschema import Draft202012Validator

import schemas

SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
TIER_NAMES = {"I", "II", "III", "IV"}


def _subschemas(node, path=""):
    """Yield (path, subschema) for every schema object reachable in ``node``."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key in ("properties", "$defs", "patternProperties"):
                for name, sub in value.items():
                    yield from _subschemas(sub, f"{path}/{key}/{name}")
            elif key in ("items", "additionalProperties", "propertyNames", "if", "then", "else", "not"):
                yield from _subschemas(value, f"{path}/{key}")
            elif key in ("oneOf", "anyOf", "allOf", "prefixItems"):
                for i, sub in enumerate(value):
                    yield from _subschemas(sub, f"{path}/{key}/{i}")


def test_names_lists_exactly_the_schema_files():
    on_disk = sorted(p.stem for p in schemas.path("filing").parent.glob("*.json"))
    assert on_disk == sorted(schemas.NAMES)


@pytest.mark.parametrize("name", schemas.NAMES)
def test_schema_is_valid_against_the_2020_12_metaschema(name):
    s = schemas.load(name)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(s)


@pytest.mark.parametrize("name", schemas.NAMES)
def test_schema_has_versioned_id_title_and_description(name):
    s = schemas.load(name)
    assert s["$id"] == f"urn:algorithm-registry:schema:{name}:1"
    assert s["title"].strip()
    assert len(s["description"]) > 40
    assert "version" not in s


@pytest.mark.parametrize("name", [n for n in schemas.NAMES if n != "filing"])
def test_document_schema_has_a_schema_version_const_of_1(name):
    s = schemas.load(name)
    assert "schema_version" in s["required"]
    assert s["properties"]["schema_version"]["const"] == "1"


@pytest.mark.parametrize("name", schemas.NAMES)
def test_every_object_with_properties_forbids_additional_properties(name):
    for where, sub in _subschemas(schemas.load(name)):
        if "properties" in sub and where.split("/")[-1] not in ("if", "then"):
            assert sub.get("additionalProperties") is False, f"{name}: {where or '/'} allows additional properties"


@pytest.mark.parametrize("name", schemas.NAMES)
def test_every_property_has_a_description_and_a_snake_case_name(name):
    for where, sub in _subschemas(schemas.load(name)):
        for prop, prop_schema in sub.get("properties", {}).items():
            assert SNAKE.match(prop) or prop in TIER_NAMES, f"{name}: {where}/properties/{prop} is not snake_case"
            assert prop_schema.get("description", "").strip(), f"{name}: {where}/properties/{prop} has no description"


@pytest.mark.parametrize("name", schemas.NAMES)
def test_every_required_property_is_declared(name):
    for where, sub in _subschemas(schemas.load(name)):
        if "properties" in sub and "required" in sub:
            missing = set(sub["required"]) - set(sub["properties"])
            assert not missing, f"{name}: {where} requires undeclared {missing}"


def test_technical_document_has_exactly_the_agreed_top_level_properties():
    s = schemas.load("technical-document")
    expected = {
        "schema_version",
        "algorithm",
        "city_code",
        "department",
        "scenario",
        "decision_role",
        "affected_population",
        "legal_basis",
        "model",
        "training_data",
        "human_oversight",
        "known_limitations",
        "vendor",
        "contacts",
        "impact_assessment",
    }
    assert set(s["properties"]) == expected
    assert set(s["required"]) == expected


def test_filing_refers_to_the_other_schemas_by_id():
    s = schemas.load("filing")
    assert s["properties"]["technical_document"]["$ref"] == "urn:algorithm-registry:schema:technical-document:1"
    assert s["properties"]["test_report"]["$ref"] == "urn:algorithm-registry:schema:test-report:1"
    assert s["required"] == ["technical_document"]


def test_load_rejects_an_unknown_name_with_key_error():
    with pytest.raises(KeyError):
        schemas.load("no-such-schema")
    with pytest.raises(KeyError):
        schemas.path("../pyproject")


def test_load_returns_a_copy_that_callers_may_modify():
    first = schemas.load("decision")
    first["title"] = "changed"
    assert schemas.load("decision")["title"] != "changed"


@pytest.mark.parametrize("name", schemas.NAMES)
def test_schema_file_is_utf8_json_with_readable_chinese(name):
    text = schemas.path(name).read_text(encoding="utf-8")
    assert json.loads(text)["$id"].endswith(f":{name}:1")
    assert "\\u" not in text  # Chinese is stored as characters, not escapes
