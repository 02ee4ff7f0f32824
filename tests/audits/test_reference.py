"""The reference data library: the shipped data sets load, are pinned by sha256, and never leak their rows."""

import copy
import csv
import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audits import reference
from audits.reference import MISSING_GROUP, DatasetError
from schemas import validation

SHIPPED = {"adult": "adult.data", "adult-test": "adult.test", "german-credit": "german.data"}
DESCRIPTOR_FILES = {"adult": "adult.json", "adult-test": "adult-test.json", "german-credit": "german-credit.json"}


def folder() -> Path:
    return reference.library_folder()


def descriptor(name: str) -> dict:
    return json.loads((folder() / DESCRIPTOR_FILES[name]).read_text(encoding="utf-8"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def adult_rows(file_name: str) -> list[list[str]]:
    """The Adult rows read with the csv module: comment line and blank lines dropped, fields stripped."""
    with (folder() / file_name).open(newline="", encoding="utf-8") as f:
        rows = [[field.strip() for field in row] for row in csv.reader(f) if row]
    return [r for r in rows if len(r) > 1]


def german_rows() -> list[list[str]]:
    return [line.split() for line in (folder() / "german.data").read_text(encoding="ascii").splitlines() if line]


# --------------------------------------------------------------------------------------------- shipped files


def test_shipped_files_are_the_reference_originals_byte_for_byte():
    expected = {
        "adult.data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
        "adult.test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
        "german.data": "b21f3d81db8071257d5ff1deaeba1fd4303b62712e6fcc9715c7a86202cb5871",
    }
    for file_name, digest in expected.items():
        assert sha256(folder() / file_name) == digest
    for name, file_name in SHIPPED.items():
        assert descriptor(name)["file"] == file_name
        assert descriptor(name)["sha256"] == expected[file_name]


def test_provenance_carries_the_attribution():
    text = (folder() / "PROVENANCE.md").read_text(encoding="utf-8")
    assert "Becker, B. & Kohavi, R. (1996)" in text and "doi:10.24432/C5XW20" in text
    assert "Hofmann, H. (1994)" in text and "doi:10.24432/C5NC77" in text
    assert "CC BY 4.0" in text
    assert "shared/reference-data" in text  # where the copies came from


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_descriptor_validates_against_the_schema(name):
    d = descriptor(name)
    assert validation.validate("reference-dataset", d) == []
    assert d["citation"] and d["licence"] == "CC BY 4.0"
    reference.check_descriptor(d)


def test_the_library_folder_has_no_problems():
    assert reference.check_folder() == {}


# --------------------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("name,file_name", [("adult", "adult.data"), ("adult-test", "adult.test")])
def test_adult_loads_with_independently_counted_rows_labels_and_groups(name, file_name):
    rows = adult_rows(file_name)
    data = reference.load(name)
    assert data.name == name and data.rows == len(rows) == descriptor(name)["rows"]
    assert data.sha256 == sha256(folder() / file_name)
    assert data.favourable_value == ">50K"
    favourable = sum(1 for r in rows if r[-1].rstrip(".") == ">50K")
    assert data.y_true.dtype == np.bool_ and int(data.y_true.sum()) == favourable
    assert list(data.sensitive) == ["sex", "race", "age_band"]
    assert data.default_sensitive == ("sex", "race")
    assert int((data.sensitive["sex"] == "Female").sum()) == sum(1 for r in rows if r[9] == "Female")
    assert int((data.sensitive["race"] == "Black").sum()) == sum(1 for r in rows if r[8] == "Black")
    # favourable share per sex, computed both ways
    female_favourable = sum(1 for r in rows if r[9] == "Female" and r[-1].rstrip(".") == ">50K")
    assert int(data.y_true[data.sensitive["sex"] == "Female"].sum()) == female_favourable


def test_adult_train_and_test_sizes_are_the_published_ones():
    assert reference.load("adult").rows == 32561
    assert reference.load("adult-test").rows == 16281


def test_adult_features_follow_the_type_conventions():
    data = reference.load("adult")
    rows = adult_rows("adult.data")
    columns = [c["name"] for c in descriptor("adult")["columns"]]
    assert list(data.features.columns) == [c for c in columns if c != "income"]
    for c in descriptor("adult")["columns"]:
        if c["name"] == "income":
            continue
        series = data.features[c["name"]]
        if c["type"] == "numeric":
            assert series.dtype == np.float64
        else:
            assert not series.isna().any()
            assert all(isinstance(v, str) for v in series.iloc[:50])
    # "?" is missing: the empty string in a categorical column
    assert int((data.features["workclass"] == "").sum()) == sum(1 for r in rows if r[1] == "?")
    assert data.features["age"].iloc[0] == 39.0 and data.features["workclass"].iloc[0] == "State-gov"
    assert data.features["capital-gain"].sum() == sum(float(r[10]) for r in rows)


def test_german_credit_loads_with_independently_counted_rows_labels_and_groups():
    rows = german_rows()
    data = reference.load("german-credit")
    assert data.rows == len(rows) == 1000
    assert data.favourable_value == "1"
    assert int(data.y_true.sum()) == sum(1 for r in rows if r[-1] == "1") == 700
    assert list(data.sensitive) == ["sex", "age_band", "foreign_worker"]
    assert data.default_sensitive == ("sex", "age_band")
    assert int((data.sensitive["sex"] == "female").sum()) == sum(1 for r in rows if r[8] in ("A92", "A95"))
    assert int((data.sensitive["foreign_worker"] == "yes").sum()) == sum(1 for r in rows if r[19] == "A201")
    assert data.features.shape == (1000, 20)
    assert data.features["credit_amount"].sum() == sum(float(r[4]) for r in rows)


def test_german_sex_is_derived_from_the_personal_status_codes():
    data = reference.load("german-credit")
    codes = data.features["personal_status_sex"].to_numpy(dtype=str)
    sex = data.sensitive["sex"]
    assert (sex[codes == "A92"] == "female").all() and (codes == "A92").sum() == 310
    for male in ("A91", "A93", "A94"):
        assert (sex[codes == male] == "male").all()
    assert set(np.unique(sex)) == {"female", "male"}


@pytest.mark.parametrize("name", ["adult", "german-credit"])
def test_an_age_on_a_bin_edge_goes_in_the_band_that_starts_there(name):
    data = reference.load(name)
    age = data.features["age"].to_numpy()
    band = data.sensitive["age_band"]
    expected = {24: "<25", 25: "25-44", 44: "25-44", 45: "45-64", 64: "45-64", 65: "65+"}
    for value, label in expected.items():
        assert (age == value).any(), value
        assert set(band[age == value]) == {label}
    assert set(np.unique(band)) == {"<25", "25-44", "45-64", "65+"}


def test_favourable_overrides_the_descriptor():
    data = reference.load("german-credit", favourable="2")
    assert data.favourable_value == "2" and int(data.y_true.sum()) == 300
    test = reference.load("adult-test", favourable="<=50K.")  # normalised like the labels
    assert test.favourable_value == "<=50K" and int(test.y_true.sum()) == 16281 - 3846


def test_an_unknown_name_lists_the_library():
    with pytest.raises(DatasetError, match="adult, adult-test, german-credit"):
        reference.load("compas")


# --------------------------------------------------------------------------------------------- integrity


def test_a_changed_byte_fails_the_sha256_check(tmp_path):
    copy_path = tmp_path / "german.data"
    shutil.copyfile(folder() / "german.data", copy_path)
    data = bytearray(copy_path.read_bytes())
    data[10] = ord("9") if data[10] != ord("9") else ord("8")
    copy_path.write_bytes(bytes(data))
    d = descriptor("german-credit")
    with pytest.raises(DatasetError) as caught:
        reference.load_file(copy_path, d)
    message = str(caught.value)
    assert d["sha256"] in message and hashlib.sha256(bytes(data)).hexdigest() in message
    assert caught.value.pointers == ("/sha256",)


def test_a_tampered_file_in_a_library_folder_is_refused(tmp_path):
    shutil.copyfile(folder() / "german-credit.json", tmp_path / "german-credit.json")
    (tmp_path / "german.data").write_bytes((folder() / "german.data").read_bytes().replace(b"A201 1", b"A201 2", 1))
    with pytest.raises(DatasetError, match="sha256"):
        reference.load("german-credit", folder=tmp_path)


def test_a_row_count_that_differs_from_the_descriptor_is_refused(tmp_path):
    lines = (folder() / "german.data").read_bytes().splitlines(keepends=True)[:999]
    path = tmp_path / "german.data"
    path.write_bytes(b"".join(lines))
    d = descriptor("german-credit") | {"sha256": sha256(path)}
    with pytest.raises(DatasetError, match="999 rows") as caught:
        reference.load_file(path, d)
    assert caught.value.pointers == ("/rows",)


def test_adult_test_without_its_label_normalisation_is_refused():
    d = descriptor("adult-test")
    del d["label"]["strip_suffix"]
    with pytest.raises(DatasetError, match="never occurs"):
        reference.load_file(folder() / "adult.test", d)


# --------------------------------------------------------------------------------------------- descriptors


def test_an_unknown_field_is_named_by_its_pointer():
    d = descriptor("adult")
    d["colour"] = "blue"
    d["label"]["meaning"] = "income"
    with pytest.raises(DatasetError) as caught:
        reference.load_file(folder() / "adult.data", d)
    assert caught.value.pointers == ("/colour", "/label/meaning")
    assert "/colour" in str(caught.value) and "/label/meaning" in str(caught.value)


def test_a_wrong_type_is_named_by_its_pointer():
    d = descriptor("german-credit")
    d["rows"] = "1000"
    d["csv"]["header"] = "no"
    with pytest.raises(DatasetError) as caught:
        reference.load_file(folder() / "german.data", d)
    assert caught.value.pointers == ("/csv/header", "/rows")
    assert "/rows" in str(caught.value)


def test_references_to_undeclared_columns_are_named_by_their_pointers():
    d = descriptor("german-credit")
    d["label"]["column"] = "outcome"
    d["sensitive_attributes"][1]["derived"]["from"] = "years"
    d["sensitive_attributes"][1]["derived"]["labels"] = ["young", "old"]
    d["default_sensitive"] = ["sex", "religion"]
    with pytest.raises(DatasetError) as caught:
        reference.check_descriptor(d)
    assert set(caught.value.pointers) == {
        "/label/column",
        "/sensitive_attributes/1/derived/from",
        "/default_sensitive/1",
    }


def test_bins_and_labels_must_agree():
    d = descriptor("adult")
    d["sensitive_attributes"][2]["derived"]["bins"] = [0, 45, 25, 65, 150]
    d["sensitive_attributes"][2]["derived"]["labels"] = ["a", "b"]
    with pytest.raises(DatasetError) as caught:
        reference.check_descriptor(d)
    assert set(caught.value.pointers) == {
        "/sensitive_attributes/2/derived/bins",
        "/sensitive_attributes/2/derived/labels",
    }


def test_an_invalid_descriptor_is_left_out_of_the_listing_and_reported(tmp_path):
    shutil.copyfile(folder() / "german.data", tmp_path / "german.data")
    (tmp_path / "german-credit.json").write_text(json.dumps(descriptor("german-credit")), encoding="utf-8")
    broken = descriptor("german-credit") | {"name": "broken", "rows": -1}
    (tmp_path / "broken.json").write_text(json.dumps(broken), encoding="utf-8")
    (tmp_path / "junk.json").write_text("{not json", encoding="utf-8")
    assert [s["name"] for s in reference.list_datasets(tmp_path)] == ["german-credit"]
    problems = reference.check_folder(tmp_path)
    assert set(problems) == {"broken.json", "junk.json"} and "/rows" in problems["broken.json"]
    assert reference.load("german-credit", folder=tmp_path).rows == 1000
    with pytest.raises(DatasetError, match="/rows"):
        reference.load("broken", folder=tmp_path)


# --------------------------------------------------------------------------------------------- other formats


def small_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [17.0, 25.0, 45.0, 65.0, np.nan, 30.0],
            "sex_code": ["1", "2", "2", "1", "1", None],
            "region": ["north", None, "south", "south", "north", "east"],
            "income": [1200.5, 3000.0, np.nan, 800.0, 950.0, 4000.0],
            "approved": ["yes", "no", "yes", "yes", "no", "no"],
        }
    )


def small_descriptor(path: Path, fmt: str) -> dict:
    return {
        "schema_version": "1",
        "name": "toy",
        "version": "1",
        "description": "A toy data set.",
        "licence": "CC0",
        "source": "made up in a test",
        "file": path.name,
        "sha256": sha256(path),
        "format": fmt,
        "columns": [
            {"name": "age", "type": "numeric"},
            {"name": "sex_code", "type": "categorical"},
            {"name": "region", "type": "categorical"},
            {"name": "income", "type": "numeric"},
            {"name": "approved", "type": "categorical"},
        ],
        "label": {"column": "approved", "favourable_value": "yes"},
        "sensitive_attributes": [
            {"name": "sex", "derived": {"from": "sex_code", "map": {"1": "male", "2": "female"}}},
            {
                "name": "age_band",
                "derived": {"from": "age", "bins": [0, 25, 45, 65, 150], "labels": ["<25", "25-44", "45-64", "65+"]},
            },
            {"name": "region", "column": "region"},
        ],
        "default_sensitive": ["sex"],
        "rows": 6,
    }


def check_small(data: reference.ReferenceData) -> None:
    assert data.rows == 6 and list(data.features.columns) == ["age", "sex_code", "region", "income"]
    assert data.y_true.tolist() == [True, False, True, True, False, False]
    assert data.features["age"].dtype == np.float64 and data.features["income"].dtype == np.float64
    assert math.isnan(data.features["income"].iloc[2]) and math.isnan(data.features["age"].iloc[4])
    assert data.features["region"].tolist() == ["north", "", "south", "south", "north", "east"]
    assert data.sensitive["sex"].tolist() == ["male", "female", "female", "male", "male", MISSING_GROUP]
    assert data.sensitive["age_band"].tolist() == ["<25", "25-44", "45-64", "65+", MISSING_GROUP, "25-44"]
    assert data.sensitive["region"].tolist() == ["north", MISSING_GROUP, "south", "south", "north", "east"]
    assert all(v.dtype.kind == "U" for v in data.sensitive.values())


def test_a_parquet_data_set_round_trips(tmp_path):
    path = tmp_path / "toy.parquet"
    small_frame().to_parquet(path, engine="pyarrow", index=False)
    d = small_descriptor(path, "parquet")
    assert validation.validate("reference-dataset", d) == []
    check_small(reference.load_file(path, d))
    (tmp_path / "toy.json").write_text(json.dumps(d), encoding="utf-8")
    check_small(reference.load("toy", folder=tmp_path))
    assert [s["name"] for s in reference.list_datasets(tmp_path)] == ["toy"]


def test_a_csv_data_set_with_a_header_round_trips(tmp_path):
    path = tmp_path / "toy.csv"
    small_frame().to_csv(path, index=False)
    d = small_descriptor(path, "csv") | {"csv": {"delimiter": ",", "header": True}}
    check_small(reference.load_file(path, d))


def test_a_value_outside_the_bins_and_an_unmapped_code_are_refused(tmp_path):
    frame = small_frame()
    frame.loc[0, "age"] = 150.0  # the upper edge is not in the last bin
    path = tmp_path / "toy.parquet"
    frame.to_parquet(path, index=False)
    with pytest.raises(DatasetError, match="outside the bin edges") as caught:
        reference.load_file(path, small_descriptor(path, "parquet"))
    assert caught.value.pointers == ("/sensitive_attributes/1/derived/bins",)
    frame = small_frame()
    frame.loc[0, "sex_code"] = "9"
    frame.to_parquet(path, index=False)
    with pytest.raises(DatasetError, match="'9'"):
        reference.load_file(path, small_descriptor(path, "parquet"))


def test_a_column_that_does_not_match_the_descriptor_is_named(tmp_path):
    path = tmp_path / "toy.parquet"
    small_frame().rename(columns={"region": "area"}).to_parquet(path, index=False)
    with pytest.raises(DatasetError, match="'region'.*'area'"):
        reference.load_file(path, small_descriptor(path, "parquet"))
    text = tmp_path / "toy.csv"
    small_frame().assign(income=["a", "b", "c", "d", "e", "f"]).to_csv(text, index=False)
    d = small_descriptor(text, "csv") | {"csv": {"delimiter": ",", "header": True}}
    with pytest.raises(DatasetError, match="'income' .* numeric"):
        reference.load_file(text, d)


# --------------------------------------------------------------------------------------------- ad-hoc CSV


def test_from_csv_loads_a_file_with_a_header(tmp_path):
    path = tmp_path / "City Data.csv"
    small_frame().to_csv(path, index=False)
    data = reference.from_csv(path, label="approved", favourable="yes", sensitive=["sex_code", "region"])
    assert data.sha256 == sha256(path) and data.rows == 6 and data.name == "city-data"
    assert data.y_true.tolist() == [True, False, True, True, False, False]
    assert data.features["age"].dtype == np.float64 and data.features["region"].iloc[1] == ""
    assert data.sensitive["sex_code"].tolist() == ["1", "2", "2", "1", "1", MISSING_GROUP]
    assert list(data.sensitive) == ["sex_code", "region"]


def test_from_csv_lists_every_unknown_column(tmp_path):
    path = tmp_path / "data.csv"
    small_frame().to_csv(path, index=False)
    with pytest.raises(DatasetError) as caught:
        reference.from_csv(path, label="approved", favourable="yes", sensitive=["gender", "region", "ethnicity"])
    assert "'gender'" in str(caught.value) and "'ethnicity'" in str(caught.value)
    assert "'region'" not in str(caught.value).split("(")[0]
    with pytest.raises(DatasetError, match="'outcome'"):
        reference.from_csv(path, label="outcome", favourable="yes", sensitive=["region"])


def test_from_csv_with_a_numeric_label(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("score,group,label\n1.5,a,1\n2.5,b,0\n3.5,a,1.0\n", encoding="utf-8")
    data = reference.from_csv(path, label="label", favourable="1", sensitive=["group"])
    assert data.y_true.tolist() == [True, False, True]


# --------------------------------------------------------------------------------------------- no rows in public


def test_list_datasets_exposes_no_row_data():
    summaries = reference.list_datasets()
    assert [s["name"] for s in summaries] == ["adult", "adult-test", "german-credit"]
    rows = {s["name"]: s["rows"] for s in summaries}
    assert rows == {"adult": 32561, "adult-test": 16281, "german-credit": 1000}
    for s in summaries:
        assert set(s) == {
            "name",
            "version",
            "description",
            "rows",
            "format",
            "licence",
            "source",
            "citation",
            "sha256",
            "sensitive_attributes",
            "default_sensitive",
        }
        for value in s.values():
            assert isinstance(value, (str, int)) or all(isinstance(v, str) for v in value)
        assert len(json.dumps(s, ensure_ascii=False)) < 2000
    by_name = {s["name"]: s for s in summaries}
    assert by_name["german-credit"]["sensitive_attributes"] == ["sex", "age_band", "foreign_worker"]
    assert by_name["adult"]["sensitive_attributes"] == ["sex", "race", "age_band"]
    text = json.dumps(summaries)
    assert "State-gov" not in text and "A201" not in text and "77516" not in text


def test_a_loaded_descriptor_is_a_copy():
    d = descriptor("german-credit")
    original = copy.deepcopy(d)
    data = reference.load_file(folder() / "german.data", d)
    data.descriptor["name"] = "changed"
    assert d == original
