"""The reference data library: the data sets the province audits submitted models on.

A reference data set is a data file (CSV or Parquet) plus a descriptor that validates against
``schemas/reference-dataset.json``: how to read the file, its columns and their types, the label column and its
favourable value, the sensitive attributes (taken from a column, or derived from one by binning or by a code map),
the licence and the sha256 of the file, which is checked every time the file is loaded. The library ships UCI
Adult (``adult``, ``adult-test``) and Statlog German credit (``german-credit``) in ``audits/datasets``, with
their attribution in ``audits/datasets/PROVENANCE.md``; any other folder of files and descriptors works the same way.

Rows of reference data are never shown to city teams or the public: :func:`list_datasets` gives only a data set's
name, description, size, licence, source and the names of its sensitive attributes.

Conventions of a loaded :class:`ReferenceData`:

* ``features``: every column except the label, named as in the descriptor and in its order; numeric columns are
  float64 (missing: NaN), categorical columns are text (missing: the empty string ``""``).
* ``y_true``: bool, True where the (normalised) label equals the favourable value.
* ``sensitive``: attribute name -> numpy array of str group labels, in descriptor order. A missing value is the
  group :data:`MISSING_GROUP`. A binned attribute puts a value equal to an edge in the bin that starts there.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pathlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from schemas import validation

__all__ = [
    "MISSING_GROUP",
    "DatasetError",
    "ReferenceData",
    "check_folder",
    "from_csv",
    "library_folder",
    "list_datasets",
    "load",
    "load_file",
]

#: Group label given to a row whose sensitive attribute is missing.
MISSING_GROUP = "missing"

_SCHEMA = "reference-dataset"
_EXAMPLES = 5  # how many offending values an error message quotes


class DatasetError(ValueError):
    """A reference data set cannot be used; the message is one sentence saying why.

    ``pointers`` holds the JSON Pointer of every offending place in the descriptor (empty when the problem is in
    the data file rather than in the descriptor).
    """

    def __init__(self, message: str, pointers: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(message)
        self.pointers: tuple[str, ...] = tuple(pointers)


@dataclass(frozen=True, eq=False)
class ReferenceData:
    """A loaded reference data set (see the module docstring for the conventions of each field)."""

    name: str
    version: str
    sha256: str
    rows: int
    features: pd.DataFrame
    y_true: np.ndarray
    sensitive: dict[str, np.ndarray]
    favourable_value: str
    descriptor: dict

    @property
    def default_sensitive(self) -> tuple[str, ...]:
        """The attributes an audit breaks results down by when none are chosen (descriptor's
        ``default_sensitive``, else every sensitive attribute)."""
        names = self.descriptor.get("default_sensitive")
        return tuple(names) if names else tuple(self.sensitive)


# --------------------------------------------------------------------------------------------- the library


def library_folder() -> pathlib.Path:
    """Return the folder of the shipped reference library, ``audits/datasets``."""
    return pathlib.Path(str(resources.files("audits").joinpath("datasets")))


def _descriptors(folder: pathlib.Path) -> list[tuple[pathlib.Path, Any]]:
    """Every ``*.json`` file of ``folder`` (sorted by file name) with its parsed content, or the exception."""
    found: list[tuple[pathlib.Path, Any]] = []
    for path in sorted(folder.glob("*.json")):
        try:
            found.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            found.append((path, DatasetError(f"The descriptor {path.name} is not readable JSON ({exc}).")))
    return found


def _checked_descriptors(folder: pathlib.Path) -> tuple[list[tuple[pathlib.Path, dict]], dict[str, str]]:
    """Split the descriptors of ``folder`` into valid ones (whose data file exists) and problems by file name."""
    good: list[tuple[pathlib.Path, dict]] = []
    problems: dict[str, str] = {}
    for path, content in _descriptors(folder):
        try:
            if isinstance(content, Exception):
                raise content
            check_descriptor(content)
            if not (folder / content["file"]).is_file():
                raise DatasetError(
                    f"The data file {content['file']} of reference data set {content['name']!r} is missing."
                )
        except DatasetError as exc:
            problems[path.name] = str(exc)
            continue
        good.append((path, content))
    return good, problems


def check_folder(folder: str | pathlib.Path | None = None) -> dict[str, str]:
    """Return the problems of a library folder: descriptor file name -> why it is not loadable (empty: none).

    Only descriptors are checked here (and that each data file exists); :func:`load` checks the data file itself.
    """
    return _checked_descriptors(pathlib.Path(folder) if folder is not None else library_folder())[1]


def _summary(descriptor: dict) -> dict:
    return {
        "name": descriptor["name"],
        "version": descriptor["version"],
        "description": descriptor["description"],
        "rows": descriptor["rows"],
        "format": descriptor["format"],
        "licence": descriptor["licence"],
        "source": descriptor["source"],
        "citation": descriptor.get("citation", ""),
        "sha256": descriptor["sha256"],
        "sensitive_attributes": [a["name"] for a in descriptor["sensitive_attributes"]],
        "default_sensitive": list(
            descriptor.get("default_sensitive") or [a["name"] for a in descriptor["sensitive_attributes"]]
        ),
    }


def list_datasets(folder: str | pathlib.Path | None = None) -> list[dict]:
    """Public summaries of the valid data sets of ``folder`` (default: the shipped library), sorted by name.

    Each summary holds name, version, description, rows, format, licence, source, citation, sha256 and the names
    of the sensitive attributes (``sensitive_attributes``, ``default_sensitive``); never any row of data.
    Descriptors that do not validate are left out (:func:`check_folder` says why).
    """
    good, _ = _checked_descriptors(pathlib.Path(folder) if folder is not None else library_folder())
    return sorted((_summary(d) for _, d in good), key=lambda s: s["name"])


def load(name: str, *, folder: str | pathlib.Path | None = None, favourable: str | None = None) -> ReferenceData:
    """Load the data set called ``name`` from ``folder`` (default: the shipped library).

    The descriptor is found by its ``name`` field, whatever its file name. ``favourable`` overrides the
    descriptor's favourable value. Raises :class:`DatasetError` for an unknown name or an unusable data set.
    """
    where = pathlib.Path(folder) if folder is not None else library_folder()
    matches = []
    for path, content in _descriptors(where):
        if isinstance(content, dict) and content.get("name") == name:
            matches.append((path, content))
    if not matches:
        known = sorted({c["name"] for _, c in _checked_descriptors(where)[0]})
        raise DatasetError(
            f"There is no reference data set named {name!r}; the library has: {', '.join(known) or 'none'}."
        )
    if len(matches) > 1:
        files = ", ".join(p.name for p, _ in matches)
        raise DatasetError(f"The reference data set name {name!r} is used by more than one descriptor: {files}.")
    path, descriptor = matches[0]
    check_descriptor(descriptor)
    return load_file(where / descriptor["file"], descriptor, favourable=favourable)


# --------------------------------------------------------------------------------------------- descriptors


def _label_of(descriptor: Any) -> str:
    name = descriptor.get("name") if isinstance(descriptor, dict) else None
    return f"reference data set {name!r}" if isinstance(name, str) else "a reference data set"


def check_descriptor(descriptor: Any) -> None:
    """Raise :class:`DatasetError` (with every JSON Pointer) unless ``descriptor`` is a usable descriptor.

    Checks the schema, then what the schema cannot say: column names are unique, the label and every attribute
    refer to declared columns of the right type, bin edges increase and there is one label per bin, attribute
    names are unique, ``default_sensitive`` names attributes, and the CSV delimiter is one ASCII character other
    than a line end (what the CSV parser can split on).
    """
    errors = validation.validate(_SCHEMA, descriptor)
    if errors:
        detail = "; ".join(f"{e.pointer or '/'}: {e.message}" for e in errors)
        raise DatasetError(
            f"The descriptor of {_label_of(descriptor)} is not valid: {detail}", sorted({e.pointer for e in errors})
        )
    problems: list[tuple[str, str]] = []
    delimiter = descriptor.get("csv", {}).get("delimiter", ",")
    if not delimiter.isascii() or delimiter in "\r\n":  # the CSV parser splits on one byte, never a line end
        problems.append(
            ("/csv/delimiter", f"the delimiter {delimiter!r} is not one ASCII character other than a line end")
        )
    types: dict[str, str] = {}
    for i, column in enumerate(descriptor["columns"]):
        if column["name"] in types:
            problems.append((f"/columns/{i}/name", f"the column name {column['name']!r} is used twice"))
        types[column["name"]] = column["type"]
    label = descriptor["label"]["column"]
    if label not in types:
        problems.append(("/label/column", f"the label column {label!r} is not one of the columns"))
    elif types[label] == "numeric" and not _is_number(descriptor["label"]["favourable_value"]):
        problems.append(
            (
                "/label/favourable_value",
                f"the label column {label!r} is numeric but the favourable value is not a number",
            )
        )
    names: set[str] = set()
    for i, attribute in enumerate(descriptor["sensitive_attributes"]):
        here = f"/sensitive_attributes/{i}"
        if attribute["name"] in names:
            problems.append((f"{here}/name", f"the attribute name {attribute['name']!r} is used twice"))
        names.add(attribute["name"])
        if "column" in attribute:
            source, pointer = attribute["column"], f"{here}/column"
        else:
            source, pointer = attribute["derived"]["from"], f"{here}/derived/from"
        if source not in types:
            problems.append((pointer, f"the column {source!r} is not one of the columns"))
            continue
        if source == label:
            problems.append((pointer, f"the label column {label!r} cannot be a sensitive attribute"))
        derived = attribute.get("derived")
        if derived is None:
            continue
        if "bins" in derived:
            if types[source] != "numeric":
                problems.append((pointer, f"bins need a numeric column, but {source!r} is categorical"))
            edges = derived["bins"]
            if any(not b > a for a, b in zip(edges, edges[1:], strict=False)):
                problems.append((f"{here}/derived/bins", "the bin edges must be strictly increasing"))
            if len(derived["labels"]) != len(edges) - 1:
                problems.append(
                    (
                        f"{here}/derived/labels",
                        f"{len(edges)} edges make {len(edges) - 1} bins but there are {len(derived['labels'])} labels",
                    )
                )
        elif types[source] != "categorical":
            problems.append((pointer, f"a code map needs a categorical column, but {source!r} is numeric"))
    for i, chosen in enumerate(descriptor.get("default_sensitive", [])):
        if chosen not in names:
            problems.append((f"/default_sensitive/{i}", f"{chosen!r} is not one of the sensitive attributes"))
    if problems:
        detail = "; ".join(f"{p}: {m}" for p, m in problems)
        raise DatasetError(
            f"The descriptor of {_label_of(descriptor)} is not valid: {detail}.", [p for p, _ in problems]
        )


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------- reading files


def _read_bytes(path: pathlib.Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"The data file {path.name} does not exist.") from None
    except OSError as exc:
        raise DatasetError(f"The data file {path.name} cannot be read ({exc.strerror or exc}).") from None


def _text_column(series: pd.Series) -> pd.Series:
    """A column as text, missing as ""; whole numbers written without a decimal part ("1", not "1.0")."""
    missing = series.isna()
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        numbers = series.astype("float64")
        finite = numbers[~missing]
        if len(finite) and bool((finite == np.floor(finite)).all()) and bool((finite.abs() < 2**53).all()):
            text = numbers.astype("Int64").astype(str)
        else:
            text = numbers.astype(str)
    else:
        text = series.astype(str)
    return text.where(~missing, "").astype(str)


def _numeric_column(series: pd.Series, column: str, file_name: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.astype("float64")
    values = pd.to_numeric(series.where(series.astype(str).str.strip() != "", None), errors="coerce")
    bad = series[values.isna() & series.notna() & (series.astype(str).str.strip() != "")]
    if len(bad):
        raise DatasetError(
            f"The column {column!r} of {file_name} is declared numeric but holds values that are not numbers, "
            f"e.g. {', '.join(repr(v) for v in bad.unique()[:_EXAMPLES])}."
        )
    return values.astype("float64")


def _parse_csv(data: bytes, descriptor: dict, file_name: str) -> pd.DataFrame:
    options = descriptor.get("csv", {})
    columns = descriptor["columns"]
    names = [c["name"] for c in columns]
    dtypes = {c["name"]: ("float64" if c["type"] == "numeric" else str) for c in columns}
    header = options.get("header", True)
    kwargs = {
        "sep": options.get("delimiter", ","),
        "header": 0 if header else None,
        "skiprows": options.get("skip_rows", 0),
        "na_values": ["", *options.get("missing_values", [])],
        "keep_default_na": False,
        "skipinitialspace": options.get("skip_initial_space", False),
        "encoding": options.get("encoding", "utf-8"),
        "skip_blank_lines": True,
        "index_col": False,
        "engine": "c",
    }
    if not header:
        kwargs["names"] = names
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=dtypes, **kwargs)
    except UnicodeDecodeError:
        raise DatasetError(f"The data file {file_name} is not valid {kwargs['encoding']} text.") from None
    except pd.errors.EmptyDataError:
        raise DatasetError(f"The data file {file_name} has no rows.") from None
    except pd.errors.ParserError as exc:
        raise DatasetError(
            f"The data file {file_name} cannot be read as CSV with its descriptor's options ({str(exc).strip()})."
        ) from None
    except (ValueError, TypeError):
        # a numeric column holds text: read everything as text to say which column and which values
        frame = pd.read_csv(io.BytesIO(data), dtype=str, **kwargs)
        _check_columns(frame, names, file_name)
        for c in columns:
            if c["type"] == "numeric":
                _numeric_column(frame[c["name"]], c["name"], file_name)
        raise DatasetError(f"The data file {file_name} cannot be read with its descriptor's column types.") from None
    _check_columns(frame, names, file_name)
    return frame


def _check_columns(frame: pd.DataFrame, names: list[str], file_name: str) -> None:
    present = [str(c) for c in frame.columns]
    missing = [n for n in names if n not in present]
    extra = [c for c in present if c not in names]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(repr(n) for n in missing)}")
        if extra:
            parts.append(f"not in the descriptor {', '.join(repr(n) for n in extra)}")
        raise DatasetError(f"The columns of {file_name} do not match its descriptor: {'; '.join(parts)}.", ["/columns"])


def _parse_parquet(data: bytes, descriptor: dict, file_name: str) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(io.BytesIO(data), engine="pyarrow")
    except Exception as exc:  # pyarrow raises many kinds of error for a damaged file
        raise DatasetError(f"The data file {file_name} cannot be read as Parquet ({type(exc).__name__}).") from None
    frame.columns = [str(c) for c in frame.columns]
    _check_columns(frame, [c["name"] for c in descriptor["columns"]], file_name)
    return frame.reset_index(drop=True)


def _typed(frame: pd.DataFrame, columns: list[dict], file_name: str) -> pd.DataFrame:
    """The frame's columns in descriptor order: numeric as float64 (NaN), categorical as text ("" for missing)."""
    out = {}
    for c in columns:
        name = c["name"]
        if c["type"] == "numeric":
            out[name] = _numeric_column(frame[name], name, file_name)
        else:
            out[name] = _text_column(frame[name])
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))


# --------------------------------------------------------------------------------------------- label and groups


def _favourable_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _label_truth(frame: pd.DataFrame, descriptor: dict, favourable: Any, file_name: str) -> tuple[np.ndarray, str]:
    label = descriptor["label"]
    column = label["column"]
    kind = next(c["type"] for c in descriptor["columns"] if c["name"] == column)
    values = frame[column]
    if kind == "numeric":
        if not _is_number(favourable):
            raise DatasetError(
                f"The favourable value {favourable!r} is not a number, but the label column {column!r} is numeric."
            )
        missing = values.isna()
        target = float(favourable)
        truth = (values == target).to_numpy(dtype=bool)
        shown = _favourable_text(target)
        seen = values.dropna().unique()
    else:
        text = values.str.strip()
        suffix = label.get("strip_suffix")
        shown = _favourable_text(favourable)
        if suffix:
            text = text.str.removesuffix(suffix)
            shown = shown.removesuffix(suffix)
        missing = text == ""
        if isinstance(favourable, bool):
            truth = (text.str.lower() == shown).to_numpy(dtype=bool)
        else:
            truth = (text == shown).to_numpy(dtype=bool)
        seen = text[~missing].unique()
    if bool(missing.any()):
        raise DatasetError(f"{int(missing.sum())} rows of {file_name} have no value in the label column {column!r}.")
    if not truth.any():
        examples = ", ".join(repr(_favourable_text(v)) for v in list(seen)[:_EXAMPLES])
        raise DatasetError(
            f"The favourable value {shown!r} never occurs in the label column {column!r} of {file_name} (values seen: {examples})."
        )
    return truth, shown


def _groups(frame: pd.DataFrame, attribute: dict, index: int, file_name: str) -> np.ndarray:
    here = f"/sensitive_attributes/{index}"
    if "column" in attribute:
        values = frame[attribute["column"]]
        text = (_text_column(values) if values.dtype == np.float64 else values).to_numpy(dtype=str)
        return np.where(text == "", MISSING_GROUP, text)
    derived = attribute["derived"]
    values = frame[derived["from"]]
    if "bins" in derived:
        edges = np.asarray(derived["bins"], dtype=np.float64)
        labels = np.asarray(derived["labels"], dtype=str)
        numbers = values.to_numpy(dtype=np.float64)
        missing = np.isnan(numbers)
        position = np.searchsorted(edges, numbers, side="right") - 1
        outside = ~missing & ((position < 0) | (position >= len(labels)))
        if outside.any():
            examples = ", ".join(_favourable_text(float(v)) for v in np.unique(numbers[outside])[:_EXAMPLES])
            raise DatasetError(
                f"{int(outside.sum())} values of column {derived['from']!r} in {file_name} lie outside the bin edges of "
                f"attribute {attribute['name']!r} (e.g. {examples}).",
                [f"{here}/derived/bins"],
            )
        result = labels[np.clip(position, 0, len(labels) - 1)].astype(object)
        result[missing] = MISSING_GROUP
        return result.astype(str)
    codes = values
    mapped = codes.map(derived["map"])
    unmapped = mapped.isna() & (codes != "")
    if bool(unmapped.any()):
        examples = ", ".join(repr(v) for v in codes[unmapped].unique()[:_EXAMPLES])
        raise DatasetError(
            f"The column {derived['from']!r} of {file_name} holds codes that the map of attribute {attribute['name']!r} "
            f"does not cover: {examples}.",
            [f"{here}/derived/map"],
        )
    return mapped.fillna(MISSING_GROUP).to_numpy(dtype=str)


# --------------------------------------------------------------------------------------------- loading


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_file(
    data_path: str | pathlib.Path, descriptor: dict, *, favourable: str | None = None, file_name: str | None = None
) -> ReferenceData:
    """Load the data file at ``data_path`` as described by ``descriptor``.

    The descriptor is checked first (:class:`DatasetError` with every JSON Pointer), then the file's sha256
    (a mismatch names both hashes), then the file is parsed (CSV with the descriptor's options, or Parquet), its
    row count checked, the label compared with the favourable value (``favourable`` overrides the descriptor's)
    and the sensitive attributes formed. The bytes hashed are exactly the bytes parsed. Messages name the file
    ``file_name`` when given (e.g. the descriptor's ``file`` for a file kept under another name), else the path's.
    """
    check_descriptor(descriptor)
    path = pathlib.Path(data_path)
    data = _read_bytes(path)
    shown_name = file_name or path.name
    digest = _sha256(data)
    if digest != descriptor["sha256"]:
        raise DatasetError(
            f"The data file {shown_name} does not match the descriptor of {_label_of(descriptor)}: "
            f"its sha256 is {digest}, the descriptor says {descriptor['sha256']}.",
            ["/sha256"],
        )
    if descriptor["format"] == "csv":
        raw = _parse_csv(data, descriptor, shown_name)
    else:
        raw = _parse_parquet(data, descriptor, shown_name)
    if len(raw) != descriptor["rows"]:
        raise DatasetError(
            f"The data file {shown_name} has {len(raw)} rows but its descriptor says {descriptor['rows']}.", ["/rows"]
        )
    frame = _typed(raw, descriptor["columns"], shown_name)
    wanted = descriptor["label"]["favourable_value"] if favourable is None else favourable
    y_true, shown = _label_truth(frame, descriptor, wanted, shown_name)
    sensitive = {a["name"]: _groups(frame, a, i, shown_name) for i, a in enumerate(descriptor["sensitive_attributes"])}
    label = descriptor["label"]["column"]
    features = frame.drop(columns=[label])
    return ReferenceData(
        name=descriptor["name"],
        version=descriptor["version"],
        sha256=digest,
        rows=len(frame),
        features=features,
        y_true=y_true,
        sensitive=sensitive,
        favourable_value=shown,
        descriptor=json.loads(json.dumps(descriptor)),
    )


def _machine_name(stem: str) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")
    if not name or not name[0].isalpha():
        name = f"data-{name}".rstrip("-")
    return name[:100]


def from_csv(path: str | pathlib.Path, *, label: str, favourable: str, sensitive: list[str]) -> ReferenceData:
    """Load an ad-hoc comma-separated UTF-8 file with a header row (no descriptor), e.g. the CLI's ``--data``.

    A column whose every non-empty value is a number is numeric, any other is categorical; an empty field is
    missing. ``label`` names the label column, ``favourable`` its favourable value (compared as text, or as a
    number when the column is numeric), ``sensitive`` the columns used as sensitive attributes as they are.
    The sha256 is computed from the file. Unknown column names raise :class:`DatasetError` listing them all.
    """
    path = pathlib.Path(path)
    data = _read_bytes(path)
    try:
        raw = pd.read_csv(
            io.BytesIO(data),
            dtype=str,
            na_values=[""],
            keep_default_na=False,
            index_col=False,
            engine="c",
            encoding="utf-8",
        )
    except UnicodeDecodeError:
        raise DatasetError(f"The data file {path.name} is not valid UTF-8 text.") from None
    except pd.errors.EmptyDataError:
        raise DatasetError(f"The data file {path.name} is empty.") from None
    except pd.errors.ParserError as exc:
        raise DatasetError(f"The data file {path.name} cannot be read as CSV ({str(exc).strip()}).") from None
    raw.columns = [str(c) for c in raw.columns]
    present = list(raw.columns)
    if len(set(present)) != len(present):
        raise DatasetError(f"The header of {path.name} names a column more than once.")
    unknown = [c for c in [label, *sensitive] if c not in present]
    if unknown:
        raise DatasetError(
            f"The data file {path.name} has no column {', '.join(repr(c) for c in dict.fromkeys(unknown))} "
            f"(its columns are: {', '.join(present)})."
        )
    if label in sensitive:
        raise DatasetError(f"The label column {label!r} cannot also be a sensitive attribute.")
    if raw.empty:
        raise DatasetError(f"The data file {path.name} has no rows.")
    columns = []
    for name in present:
        filled = raw[name].dropna()
        numeric = len(filled) > 0 and bool(pd.to_numeric(filled.str.strip(), errors="coerce").notna().all())
        columns.append({"name": name, "type": "numeric" if numeric else "categorical"})
    label_type = next(c["type"] for c in columns if c["name"] == label)
    if label_type == "numeric" and not _is_number(favourable):
        # a numeric-looking label compared with a non-number: treat the label as text
        columns = [c | {"type": "categorical"} if c["name"] == label else c for c in columns]
    frame = _typed(raw, columns, path.name)
    descriptor = {
        "schema_version": "1",
        "name": _machine_name(path.stem),
        "version": "ad hoc",
        "description": f"Ad-hoc data file {path.name}, loaded without a descriptor.",
        "licence": "unknown",
        "source": path.name,
        "file": path.name,
        "sha256": _sha256(data),
        "format": "csv",
        "csv": {"delimiter": ",", "header": True},
        "columns": columns,
        "label": {"column": label, "favourable_value": favourable},
        "sensitive_attributes": [{"name": s, "column": s} for s in dict.fromkeys(sensitive)],
        "rows": len(frame),
    }
    y_true, shown = _label_truth(frame, descriptor, favourable, path.name)
    groups = {a["name"]: _groups(frame, a, i, path.name) for i, a in enumerate(descriptor["sensitive_attributes"])}
    return ReferenceData(
        name=descriptor["name"],
        version=descriptor["version"],
        sha256=descriptor["sha256"],
        rows=len(frame),
        features=frame.drop(columns=[label]),
        y_true=y_true,
        sensitive=groups,
        favourable_value=shown,
        descriptor=descriptor,
    )
