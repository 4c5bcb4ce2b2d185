"""Record schemas: loading AML .schema files, validation, JSON Schema export, round trip."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pytest

from amlproxy.core.schema import (
    Attribute,
    AttributeType,
    Schema,
    available_schemas,
    load_schema,
    schemas_dir,
)
from amlproxy.errors import FieldError, RecordValidationError, SchemaError

CENSUS_ROW = (
    "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, "
    "White, Male, 2174, 0, 40, United-States, <=50K"
)


@pytest.fixture(scope="module")
def census() -> Schema:
    return load_schema("census-income")


def census_fields(schema: Schema, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(zip(schema.column_names, CENSUS_ROW.split(", "), strict=True))
    fields.update({k.replace("_", "-"): v for k, v in changes.items()})
    return fields


def reasons_of(schema: Schema, fields: dict[str, Any], **kw: Any) -> dict[str | None, str]:
    with pytest.raises(RecordValidationError) as info:
        schema.validate(fields, **kw)
    return {e.field: e.reason for e in info.value.errors}


def doc(*attributes: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"version": "1.0", "dataFormat": "CSV", "attributes": list(attributes), **top}


def attr(name: str, kind: str = "NUMERIC", **extra: Any) -> dict[str, Any]:
    return {"attributeName": name, "attributeType": kind, **extra}


def write_schema(tmp_path: Path, content: object, name: str = "t.schema") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


# --- loading ---------------------------------------------------------------------------


def test_bundled_census_schema(census: Schema) -> None:
    assert census.name == "census-income"
    assert census.path is not None and census.path.parent == schemas_dir().resolve()
    assert census.column_names == (
        "age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
        "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
        "hours-per-week", "native-country", "income",
    )  # fmt: skip
    assert census.feature_names == census.column_names[:-1]
    assert census.target == "income"
    assert census.row_id is None and census.row_weight is None and census.excluded == set()
    assert census.has_header is False
    assert census.missing_markers == {"?", ""}
    optional = {a.name for a in census.attributes if not a.required}
    assert optional == {"workclass", "occupation", "native-country", "income"}
    counts = {a.name: len(a.categories) for a in census.attributes if a.categories}
    assert counts == {
        "workclass": 8, "education": 16, "marital-status": 7, "occupation": 14,
        "relationship": 6, "race": 5, "sex": 2, "native-country": 41, "income": 2,
    }  # fmt: skip
    assert census.attribute("income").categories == ("<=50K", ">50K")  # negative first
    assert census.attribute("age") == Attribute("age", AttributeType.NUMERIC, True, None, 0, 150)


def test_available_schemas_and_dir() -> None:
    assert "census-income" in available_schemas()
    assert load_schema("census-income.schema") is load_schema("census-income")
    assert (schemas_dir() / "census-income.schema").is_file()


def test_load_by_path_is_cached_and_reloaded_when_changed(tmp_path: Path) -> None:
    path = write_schema(tmp_path, doc(attr("a"), attr("b")))
    first = load_schema(path)
    assert load_schema(str(path)) is first
    assert first.name == "t" and first.feature_names == ("a", "b")
    path.write_text(json.dumps(doc(attr("a"), attr("b"), attr("c"))))
    os.utime(path, ns=(1, 1_000_000_000))  # a different mtime, whatever the clock
    assert load_schema(path).feature_names == ("a", "b", "c")


def test_api_reference_spelling_is_read(tmp_path: Path) -> None:
    api_doc = {
        "version": "1.0",
        "recordAnnotationFieldName": "F1",
        "recordWeightFieldName": "F2",
        "targetFieldName": "F3",
        "dataFormat": "CSV",
        "dataFileContainsHeader": True,
        "variables": [
            {"fieldName": "F1", "fieldType": "TEXT"},
            {"fieldName": "F2", "fieldType": "NUMERIC"},
            {"fieldName": "F3", "fieldType": "CATEGORICAL"},
            {"fieldName": "F4", "fieldType": "NUMERIC"},
            {"fieldName": "F5", "fieldType": "BINARY"},
        ],
        "excludedVariableNames": ["F5"],
    }
    schema = load_schema(write_schema(tmp_path, api_doc))
    assert (schema.row_id, schema.row_weight, schema.target) == ("F1", "F2", "F3")
    assert schema.feature_names == ("F4",)
    assert schema.has_header is True
    assert schema.to_aml_dict()["attributes"][0] == {
        "attributeName": "F1",
        "attributeType": "TEXT",
    }


def test_plain_aml_schema_round_trips_exactly() -> None:
    aml = {
        "version": "1.0",
        "rowId": "customerId",
        "targetAttributeName": "willRespondToCampaign",
        "dataFormat": "CSV",
        "dataFileContainsHeader": False,
        "attributes": [
            {"attributeName": "customerId", "attributeType": "CATEGORICAL"},
            {"attributeName": "jobDescription", "attributeType": "TEXT"},
            {"attributeName": "campaign", "attributeType": "NUMERIC"},
            {"attributeName": "willRespondToCampaign", "attributeType": "BINARY"},
        ],
        "excludedAttributeNames": [],
    }
    assert Schema.from_document(aml).to_aml_dict() == aml


def test_census_schema_round_trips(census: Schema) -> None:
    again = Schema.from_document(census.to_aml_dict(), name="again")
    assert again.attributes == census.attributes
    assert again.to_aml_dict() == census.to_aml_dict()
    on_disk = json.loads((schemas_dir() / "census-income.schema").read_text())
    assert Schema.from_document(on_disk).to_aml_dict() == census.to_aml_dict()


def test_extension_keys_round_trip() -> None:
    d = doc(
        attr("a", minimum=-1.5, maximum=2, required=True),
        attr("c", "CATEGORICAL", categories=["x", "y"]),
        missingValues=["NA"],
        extraFields="ignore",
        dataFileContainsHeader=True,
    )
    out = Schema.from_document(d).to_aml_dict()
    assert out["attributes"][0] == attr("a", required=True, minimum=-1.5, maximum=2)
    assert out["attributes"][1] == attr("c", "CATEGORICAL", categories=["x", "y"])
    assert out["missingValues"] == ["NA"] and out["extraFields"] == "ignore"
    assert Schema.from_document(out).to_aml_dict() == out


def test_unknown_name_lists_the_available_ones() -> None:
    with pytest.raises(SchemaError, match=r"unknown schema 'nope' \(available: .*census-income"):
        load_schema("nope")


def test_missing_file() -> None:
    with pytest.raises(SchemaError, match=re.escape("schema file not found: /no/such.schema")):
        load_schema("/no/such.schema")
    with pytest.raises(SchemaError, match=re.escape("schema file not found: no/such.schema")):
        load_schema(Path("no/such.schema"))
    with pytest.raises(SchemaError, match=r"unknown schema 'such\.schema' \(available: "):
        load_schema("such.schema")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"version": "1.0",\n  "attributes": [}', r"invalid JSON: .* at line 2 column"),
        ('{"attributes": [], "attributes": []}', r"key 'attributes' appears twice"),
        (b"\xff\xfe{}", r"not UTF-8"),
        ([1, 2], r"expected a JSON object, got an array"),
        ({"version": "1.0"}, r"'attributes' must be a non-empty list"),
        (doc(), r"'attributes' must be a non-empty list"),
        (
            doc(attr("a", "NUMBER")),
            r"attribute 'a' has unknown attributeType 'NUMBER' \(expected "
            r"one of NUMERIC, CATEGORICAL, TEXT, BINARY\)",
        ),
        (doc({"attributeType": "TEXT"}), r"attribute #1 has no 'attributeName'"),
        (doc("a"), r"attribute #1 must be a JSON object, got a string"),  # type: ignore[arg-type]
        (doc(attr("a"), attr("a")), r"attribute 'a' is listed twice"),
        (doc(attr("a"), targetAttributeName="y"), r"targetAttributeName 'y' is not among"),
        (doc(attr("a"), rowId="id"), r"rowId 'id' is not among the attributes"),
        (doc(attr("a"), rowWeight="w"), r"rowWeight 'w' is not among the attributes"),
        (doc(attr("a"), excludedAttributeNames=["z"]), r"excludedAttributeNames 'z' is not among"),
        (doc(attr("a"), targetAttributeName="a"), r"no attribute is left to send to a model"),
        (doc(attr("a", minimun=1)), r"unknown key 'minimun' in attribute #1"),
        (doc(attr("a"), targetAttribute="a"), r"unknown key 'targetAttribute' in the schema"),
        (doc(attr("a", categories=["x"])), r"'categories' only applies to CATEGORICAL"),
        (doc(attr("a", "CATEGORICAL", categories=[])), r"'categories' must be a non-empty list"),
        (doc(attr("a", "CATEGORICAL", categories=["x", " x"])), r"lists a category twice"),
        (doc(attr("a", "TEXT", minimum=0)), r"'minimum' only applies to NUMERIC attributes"),
        (doc(attr("a", maximum="9")), r"'maximum' must be a finite number, not '9'"),
        (doc(attr("a", minimum=True)), r"'minimum' must be a finite number, not True"),
        (doc(attr("a", minimum=5, maximum=1)), r"minimum 5 is above maximum 1"),
        (doc(attr("a", required="yes")), r"'required' must be true or false"),
        (doc(attr("a"), missingValues="?"), r"'missingValues' must be a list of strings"),
        (doc(attr("a"), extraFields="warn"), r"'extraFields' must be 'reject' or 'ignore'"),
        (doc(attr("a"), version="2.0"), r"unsupported version '2.0' \(expected '1.0'\)"),
        (doc(attr("a"), dataFormat="JSON"), r"unsupported dataFormat 'JSON'"),
        (doc(attr("a"), dataFileContainsHeader="no"), r"'dataFileContainsHeader' must be true"),
        (doc(attr("a"), targetAttributeName=3), r"'targetAttributeName' must be an attribute"),
        ({"variables": [attr("a")], "attributes": [attr("a")]}, r"gives 'attributes' twice"),
    ],
)
def test_schema_errors(tmp_path: Path, content: object, message: str) -> None:
    path = write_schema(tmp_path, content)
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(str(path.resolve()))
    assert re.search(message, text), text


# --- validation ------------------------------------------------------------------------


def test_valid_census_record_is_typed(census: Schema) -> None:
    assert census.validate(census_fields(census)) == {
        "age": 39.0, "workclass": "State-gov", "fnlwgt": 77516.0, "education": "Bachelors",
        "education-num": 13.0, "marital-status": "Never-married", "occupation": "Adm-clerical",
        "relationship": "Not-in-family", "race": "White", "sex": "Male", "capital-gain": 2174.0,
        "capital-loss": 0.0, "hours-per-week": 40.0, "native-country": "United-States",
    }  # fmt: skip


def test_json_values_and_whitespace(census: Schema) -> None:
    fields = census_fields(census, age=39, fnlwgt=77516.5, sex="  Male\t", education_num=" 13 ")
    out = census.validate(fields)
    assert out["age"] == 39.0 and type(out["age"]) is float
    assert out["fnlwgt"] == 77516.5 and out["sex"] == "Male" and out["education-num"] == 13.0


@pytest.mark.parametrize("missing", ["?", "", "  ", " ? ", None])
def test_missing_values(census: Schema, missing: object) -> None:
    out = census.validate(census_fields(census, workclass=missing, native_country=missing))
    assert out["workclass"] is None and out["native-country"] is None
    assert reasons_of(census, census_fields(census, age=missing, race=missing)) == {
        "age": "missing required value",
        "race": "missing required value",
    }


def test_absent_keys_are_missing(census: Schema) -> None:
    fields = census_fields(census)
    del fields["occupation"], fields["income"], fields["sex"]
    assert reasons_of(census, fields) == {"sex": "missing required value"}
    fields["sex"] = "Female"
    assert census.validate(fields)["occupation"] is None


@pytest.mark.parametrize(
    "value", ["nan", "NaN", "inf", "-inf", "Infinity", "-Infinity", float("nan"), math.inf]
)
def test_nan_and_infinity_are_refused(census: Schema, value: object) -> None:
    assert reasons_of(census, census_fields(census, capital_gain=value)) == {
        "capital-gain": f"not a finite number: {value!r}"
    }


def test_unknown_category_message_is_short(census: Schema) -> None:
    reasons = reasons_of(census, census_fields(census, workclass="Mars", sex="M"))
    assert reasons["workclass"] == (
        "unknown category 'Mars' (expected one of 'Private', 'Self-emp-not-inc', "
        "'Self-emp-inc', ... 8 in all)"
    )
    assert reasons["sex"] == "unknown category 'M' (expected one of 'Female', 'Male')"
    country = reasons_of(census, census_fields(census, native_country="Atlantis"))
    assert "41 in all" in country["native-country"] and "Yugoslavia" not in str(country)


def test_out_of_range_and_wrong_types(census: Schema) -> None:
    reasons = reasons_of(
        census,
        census_fields(
            census,
            age="151",
            hours_per_week=-1,
            fnlwgt="12 345",
            capital_gain=True,
            capital_loss=[0],
            education={"x": 1},
            race=False,
            education_num=10**400,
        ),
    )
    assert reasons == {
        "age": "151 is above the maximum 150",
        "fnlwgt": "not a number: '12 345'",
        "education": "expected a string, got an object",
        "education-num": f"number out of range: {str(10**400)[:37]}...",
        "race": "expected a string, got a boolean",
        "capital-gain": "expected a number, got a boolean",
        "capital-loss": "expected a number, got an array",
        "hours-per-week": "-1 is below the minimum 0",
    }


def test_every_bad_field_is_listed_in_column_order_with_the_line(census: Schema) -> None:
    fields = census_fields(census, sex="?", age="x", planet="Mars", race="Green")
    with pytest.raises(RecordValidationError) as info:
        census.validate(fields, line=7)
    error = info.value
    assert error.line == 7 and error.row_id is None
    assert [e.field for e in error.errors] == ["age", "race", "sex", "planet"]
    assert str(error) == (
        "line 7: age: not a number: 'x'; race: unknown category 'Green' (expected one of "
        "'White', 'Asian-Pac-Islander', 'Amer-Indian-Eskimo', ... 5 in all); "
        "sex: missing required value; planet: unknown field (not in the schema)"
    )
    assert error.errors[-1] == FieldError("planet", "unknown field (not in the schema)")


@pytest.fixture(scope="module")
def roles() -> Schema:
    return Schema.from_document(
        doc(
            attr("id", "CATEGORICAL"),
            attr("w"),
            attr("x", required=True),
            attr("flag", "BINARY"),
            attr("note", "TEXT"),
            attr("code", "CATEGORICAL", categories=["1", "2", "3.5"]),
            attr("label", "CATEGORICAL"),
            attr("secret", "TEXT"),
            rowId="id",
            rowWeight="w",
            targetAttributeName="label",
            excludedAttributeNames=["secret"],
        ),
        name="roles",
    )


def test_target_row_id_weight_and_excluded_are_allowed_but_not_sent(roles: Schema) -> None:
    assert roles.feature_names == ("x", "flag", "note", "code")
    fields = {"id": " r-1 ", "w": "not a number", "x": "1", "label": "z", "secret": [1]}
    assert roles.validate(fields) == {"x": 1.0, "flag": None, "note": None, "code": None}
    assert roles.row_id_of(fields) == "r-1"
    assert roles.row_id_of({"id": "?"}) is None and roles.row_id_of({}) is None
    assert roles.row_id_of({"id": 42}) == "42"


def test_error_names_the_row_id(roles: Schema) -> None:
    with pytest.raises(RecordValidationError) as info:
        roles.validate({"id": "r-9", "x": "?"}, line=3)
    assert info.value.row_id == "r-9"
    assert str(info.value) == "row id r-9 (line 3): x: missing required value"


@pytest.mark.parametrize(
    ("given", "expected"),
    [("1", True), ("0", False), ("TRUE", True), ("false", False), ("Yes", True), ("no", False),
     ("y", True), ("N", False), (1, True), (0, False), (True, True), (False, False)],
)  # fmt: skip
def test_binary_forms(roles: Schema, given: object, expected: bool) -> None:
    assert roles.validate({"x": 0, "flag": given})["flag"] is expected


@pytest.mark.parametrize("given", ["maybe", "2", 2, "tru"])
def test_binary_refused(roles: Schema, given: object) -> None:
    assert reasons_of(roles, {"x": 0, "flag": given}) == {
        "flag": f"not a binary value: {given!r} (expected 0/1, true/false, yes/no or y/n)"
    }


def test_numbers_for_categorical_fields_are_taken_in_string_form(roles: Schema) -> None:
    assert roles.validate({"x": 0, "code": 1})["code"] == "1"
    assert roles.validate({"x": 0, "code": 2.0})["code"] == "2"
    assert roles.validate({"x": 0, "code": 3.5})["code"] == "3.5"
    assert roles.validate({"x": 0, "note": 12})["note"] == "12"
    assert reasons_of(roles, {"x": 0, "code": 4}) == {
        "code": "unknown category '4' (expected one of '1', '2', '3.5')"
    }


def test_extra_fields_can_be_ignored() -> None:
    schema = Schema.from_document(doc(attr("a"), extraFields="ignore"))
    assert schema.validate({"a": "1", "b": "2"}) == {"a": 1.0}
    assert schema.json_schema()["additionalProperties"] is True


def test_custom_missing_markers() -> None:
    schema = Schema.from_document(doc(attr("a"), attr("b", "TEXT"), missingValues=["NA"]))
    assert schema.validate({"a": "NA", "b": "?"}) == {"a": None, "b": "?"}
    assert reasons_of(schema, {"a": "?"}) == {"a": "not a number: '?'"}


@pytest.mark.parametrize("name", ["json", "model_config", "_x", "1st", "copy", "has space"])
def test_attribute_names_pydantic_cannot_take_as_fields(name: str) -> None:
    schema = Schema.from_document(doc(attr(name, required=True), attr("b", "TEXT")))
    assert schema.validate({name: "2", "b": "x"}) == {name: 2.0, "b": "x"}
    assert reasons_of(schema, {"b": "x"}) == {name: "missing required value"}
    assert reasons_of(schema, {name: "z"}) == {name: "not a number: 'z'"}


def test_model_is_built_once_and_validates_by_attribute_name(census: Schema) -> None:
    assert load_schema("census-income").model is census.model
    record = census.model.model_validate(census.validate(census_fields(census)))
    assert getattr(record, "education-num") == 13.0


# --- JSON Schema -----------------------------------------------------------------------


def test_json_schema_structure(census: Schema) -> None:
    js = census.json_schema()
    assert js["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert js["type"] == "object" and js["additionalProperties"] is False
    assert list(js["properties"]) == list(census.column_names)
    assert js["properties"]["age"]["anyOf"][0] == {"type": "number", "minimum": 0,
                                                    "maximum": 150}
    sex = js["properties"]["sex"]["anyOf"]
    assert [b["type"] for b in sex] == ["string"] and sex[0]["examples"] == ["Female", "Male"]
    workclass = [b["type"] for b in js["properties"]["workclass"]["anyOf"]]
    assert workclass == ["string", "null", "string"]  # a category, null, a marker
    assert "ignored when scoring" in js["properties"]["income"]["description"]
    assert "income" not in js["required"] and "workclass" not in js["required"]
    assert set(js["required"]) == {a.name for a in census.attributes if a.required}


def test_json_schema_validates_records(census: Schema) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(census.json_schema())
    jsonschema.Draft202012Validator.check_schema(census.json_schema())
    good = census.validate(census_fields(census))
    assert not list(validator.iter_errors(good))
    assert not list(validator.iter_errors({**good, "income": ">50K", "workclass": None}))
    bad = {**good, "age": 200, "sex": "M", "planet": "Mars"}
    bad.pop("race")
    messages = sorted(e.message for e in validator.iter_errors(bad))
    assert len(messages) == 4, messages
