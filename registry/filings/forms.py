"""The filing form: between the HTML form's flat fields and the two JSON documents, and back.

Every form field is named after the JSON Pointer of the value it edits ("/technical_document/algorithm/name_zh"
→ "technical_document-algorithm-name_zh"), so a validation error's pointer finds its field without a table.
Nothing here validates: the service does (``contracts.validate_draft``). A value that does not parse as the
number it should be is passed on as text, so the schema reports it at its pointer ("expected an integer").
No Flask request in here: views hand in the submitted fields as a mapping.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from registry.filings import risk
from schemas.validation import FieldError

TD = "/technical_document"
TR = "/test_report"
TD_FILE = "technical_document_file"
TR_FILE = "test_report_file"
MIN_INPUT_ROWS = 3
MIN_CONTACT_ROWS = 2


@dataclass(frozen=True)
class Field:
    """One scalar field of the form. ``kind``: text, textarea, integer, number, date, email, select, lines."""

    pointer: str
    label: object  # a lazy string
    kind: str = "text"
    choices: str | None = None  # name of a labels table, for selects
    hint: object = None

    @property
    def id(self) -> str:
        return field_id(self.pointer)


def field_id(pointer: str) -> str:
    """The form field name and HTML id for a JSON Pointer."""
    return pointer.strip("/").replace("/", "-")


DOCUMENT_FIELDS: tuple[Field, ...] = (
    Field(f"{TD}/algorithm/name_zh", _l("Name of the algorithm (Chinese)")),
    Field(f"{TD}/algorithm/name_en", _l("Name of the algorithm (English)")),
    Field(f"{TD}/algorithm/version", _l("Version"), hint=_l("For example 2.1.0")),
    Field(f"{TD}/algorithm/purpose", _l("Purpose: what it decides, and for whom"), "textarea"),
    Field(f"{TD}/department", _l("Department that uses it")),
    Field(f"{TD}/scenario", _l("Approval scenario"), "select", "SCENARIOS"),
    Field(f"{TD}/decision_role", _l("Role in the decision"), "select", "DECISION_ROLES"),
    Field(f"{TD}/affected_population/description", _l("Affected population"), "textarea"),
    Field(f"{TD}/affected_population/estimated_decisions_per_year", _l("Estimated decisions per year"), "integer"),
    Field(f"{TD}/legal_basis", _l("Legal basis"), "lines", hint=_l("One law, regulation or document per line")),
    Field(
        f"{TD}/model/type",
        _l("Kind of model"),
        hint=_l("For example gradient boosting, logistic regression, scorecard"),
    ),
    Field(f"{TD}/model/description", _l("How the model works and is used"), "textarea"),
    Field(f"{TD}/model/output/description", _l("Output, and how it becomes a decision"), "textarea"),
    Field(f"{TD}/model/output/favourable_label", _l("Favourable output label"), hint=_l("For example eligible")),
    Field(
        f"{TD}/model/output/decision_threshold",
        _l("Decision threshold"),
        "number",
        hint=_l("A number, or leave empty and tick the box below if the model outputs a label directly"),
    ),
    Field(f"{TD}/training_data/source", _l("Source of the training data"), "textarea"),
    Field(f"{TD}/training_data/period/start", _l("Training data: first day"), "date"),
    Field(f"{TD}/training_data/period/end", _l("Training data: last day"), "date"),
    Field(f"{TD}/training_data/size", _l("Training data: number of records"), "integer"),
    Field(f"{TD}/training_data/representativeness", _l("Representativeness of the training data"), "textarea"),
    Field(f"{TD}/human_oversight/description", _l("Human oversight"), "textarea"),
    Field(f"{TD}/human_oversight/appeal_process", _l("How a person can appeal"), "textarea"),
    Field(f"{TD}/known_limitations", _l("Known limitations"), "lines", hint=_l("One limitation per line")),
    Field(f"{TD}/vendor/name", _l("Supplier")),
    Field(f"{TD}/vendor/contact", _l("Supplier contact")),
)
NO_THRESHOLD = "technical_document-model-output-no_threshold"

INPUT_COLUMNS: tuple[tuple[str, object, str], ...] = (
    ("name", _l("Name"), "text"),
    ("type", _l("Type"), "select"),
    ("description", _l("Meaning and source"), "text"),
    ("personal_data", _l("Personal data"), "checkbox"),
    ("sensitive_attribute", _l("Sensitive attribute"), "checkbox"),
    ("likely_proxy_for", _l("Likely proxy for"), "list"),
)
CONTACT_COLUMNS: tuple[tuple[str, object, str], ...] = (
    ("name", _l("Name"), "text"),
    ("role", _l("Role"), "text"),
    ("email", _l("E-mail"), "email"),
    ("phone", _l("Telephone"), "text"),
)

REPORT_FIELDS: tuple[Field, ...] = (
    Field(f"{TR}/tester/kind", _l("Kind of test"), "select", "TESTER_KINDS"),
    Field(f"{TR}/tester/organisation", _l("Testing organisation")),
    Field(f"{TR}/tested_on", _l("Date the test was completed"), "date"),
    Field(f"{TR}/data/description", _l("Test data: what and how drawn"), "textarea"),
    Field(f"{TR}/data/size", _l("Test data: number of cases"), "integer"),
    Field(f"{TR}/data/period/start", _l("Test data: first day"), "date"),
    Field(f"{TR}/data/period/end", _l("Test data: last day"), "date"),
    Field(f"{TR}/favourable_label", _l("Favourable label in the test"), hint=_l("For example eligible")),
    Field(f"{TR}/overall/n", _l("Overall: number of cases"), "integer"),
    Field(f"{TR}/overall/accuracy", _l("Overall: accuracy"), "number", hint=_l("A share between 0 and 1")),
    Field(f"{TR}/overall/precision", _l("Overall: precision"), "number", hint=_l("A share between 0 and 1")),
    Field(f"{TR}/overall/recall", _l("Overall: recall"), "number", hint=_l("A share between 0 and 1")),
    Field(f"{TR}/overall/selection_rate", _l("Overall: selection rate"), "number", hint=_l("A share between 0 and 1")),
    Field(f"{TR}/overall/fpr", _l("Overall: false positive rate"), "number", hint=_l("A share between 0 and 1")),
    Field(f"{TR}/overall/fnr", _l("Overall: false negative rate"), "number", hint=_l("A share between 0 and 1")),
    Field(f"{TR}/overall/confusion/tp", _l("Overall: true positives"), "integer"),
    Field(f"{TR}/overall/confusion/fp", _l("Overall: false positives"), "integer"),
    Field(f"{TR}/overall/confusion/tn", _l("Overall: true negatives"), "integer"),
    Field(f"{TR}/overall/confusion/fn", _l("Overall: false negatives"), "integer"),
)

ANSWERS = f"{TD}/impact_assessment/answers"

# Labels of pointers that are not single form fields, for the "what is missing" list.
SECTION_LABELS = {
    TD: _l("Technical document"),
    TR: _l("Test report"),
    "/model": _l("Model file (ONNX)"),
    f"{TD}/algorithm": _l("Algorithm"),
    f"{TD}/city_code": _l("City code"),
    f"{TD}/schema_version": _l("Schema version"),
    f"{TD}/affected_population": _l("Affected population"),
    f"{TD}/model": _l("Model"),
    f"{TD}/model/inputs": _l("Model inputs"),
    f"{TD}/model/output": _l("Model output"),
    f"{TD}/training_data": _l("Training data"),
    f"{TD}/training_data/period": _l("Training data period"),
    f"{TD}/human_oversight": _l("Human oversight and appeal"),
    f"{TD}/vendor": _l("Supplier"),
    f"{TD}/contacts": _l("Contacts"),
    f"{TD}/impact_assessment": _l("Impact self-assessment"),
    ANSWERS: _l("Impact self-assessment"),
    f"{TR}/tester": _l("Tester"),
    f"{TR}/data": _l("Test data"),
    f"{TR}/data/period": _l("Test data period"),
    f"{TR}/overall": _l("Overall figures"),
    f"{TR}/overall/confusion": _l("Overall confusion matrix"),
    f"{TR}/groups": _l("Figures per group"),
}

SCALAR_FIELDS = {f.pointer: f for f in DOCUMENT_FIELDS + REPORT_FIELDS}


# --- pointers ------------------------------------------------------------------------------------------------------


def _tokens(pointer: str) -> list[str]:
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]] if pointer else []


def _get(document: object, tokens: list[str]):
    for token in tokens:
        if isinstance(document, dict):
            document = document.get(token)
        elif isinstance(document, list) and token.isdigit() and int(token) < len(document):
            document = document[int(token)]
        else:
            return None
    return document


def _set(document: dict, tokens: list[str], value) -> None:
    for token in tokens[:-1]:
        child = document.get(token)
        if not isinstance(child, dict):
            child = {}
            document[token] = child
        document = child
    document[tokens[-1]] = value


def _delete(document: dict, tokens: list[str]) -> None:
    parents = []
    for token in tokens[:-1]:
        child = document.get(token) if isinstance(document, dict) else None
        if not isinstance(child, dict):
            return
        parents.append((document, token))
        document = child
    document.pop(tokens[-1], None)
    for parent, token in reversed(parents):  # an object left empty goes too, so drafts stay tidy
        if parent[token] == {}:
            del parent[token]


def _question_ids() -> list[str]:
    return [q["id"] for q in risk.questionnaire()["questions"]]


def _sep() -> str:
    from registry.i18n import is_chinese

    return "：" if is_chinese() else ": "


def field_label(pointer: str) -> str:
    """A readable, translated label for an error's pointer (the nearest field or section that has one)."""
    tokens = pointer.split("/")
    # Rows of the inputs and contacts tables, and questionnaire answers, have labels made from their parts.
    if pointer.startswith(f"{TD}/model/inputs/") and len(tokens) >= 5 and tokens[4].isdigit():
        column = dict((c, lbl) for c, lbl, _k in INPUT_COLUMNS).get(tokens[5]) if len(tokens) > 5 else None
        row = str(_l("Model input %(n)s", n=int(tokens[4]) + 1))
        return f"{row}{_sep()}{column}" if column else row
    if pointer.startswith(f"{TD}/contacts/") and len(tokens) >= 4 and tokens[3].isdigit():
        column = dict((c, lbl) for c, lbl, _k in CONTACT_COLUMNS).get(tokens[4]) if len(tokens) > 4 else None
        row = str(_l("Contact %(n)s", n=int(tokens[3]) + 1))
        return f"{row}{_sep()}{column}" if column else row
    if pointer.startswith(ANSWERS + "/"):
        qid = tokens[4]
        from registry.i18n import pick

        for q in risk.questionnaire()["questions"]:
            if q["id"] == qid:
                return f"{_l('Impact self-assessment')}{_sep()}{pick(q['text_zh'], q['text_en'])}"
    while pointer:
        if pointer in SCALAR_FIELDS:
            return str(SCALAR_FIELDS[pointer].label)
        if pointer in SECTION_LABELS:
            return str(SECTION_LABELS[pointer])
        pointer = pointer.rsplit("/", 1)[0]
    return str(_l("Filing"))


def error_target(pointer: str, row_ids: set[str]) -> str | None:
    """The id of the form field an error at ``pointer`` belongs beside, or None (shown in the summary only)."""
    candidate = pointer
    while candidate:
        fid = field_id(candidate)
        if candidate in SCALAR_FIELDS or fid in row_ids:
            return fid
        candidate = candidate.rsplit("/", 1)[0]
    return None


# --- documents → form values ---------------------------------------------------------------------------------------


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def values_from_documents(technical_document: dict | None, test_report: dict | None) -> tuple[dict, int, int]:
    """The form's values for existing documents, and the number of input and contact rows to show."""
    values: dict[str, str] = {}
    td = technical_document or {}
    tr = test_report or {}
    for f in DOCUMENT_FIELDS + REPORT_FIELDS:
        source = td if f.pointer.startswith(TD) else tr
        value = _get(source, _tokens(f.pointer)[1:])
        values[f.id] = "\n".join(map(_text, value)) if f.kind == "lines" and isinstance(value, list) else _text(value)
    output = _get(td, ["model", "output"]) or {}
    if isinstance(output, dict) and "decision_threshold" in output and output["decision_threshold"] is None:
        values[NO_THRESHOLD] = "y"
    inputs = _get(td, ["model", "inputs"]) or []
    inputs = inputs if isinstance(inputs, list) else []
    for i, row in enumerate(inputs):
        row = row if isinstance(row, dict) else {}
        for column, _label, kind in INPUT_COLUMNS:
            key = field_id(f"{TD}/model/inputs/{i}/{column}")
            value = row.get(column)
            if kind == "checkbox":
                if value is True:
                    values[key] = "y"
            elif kind == "list":
                values[key] = ", ".join(map(_text, value)) if isinstance(value, list) else _text(value)
            else:
                values[key] = _text(value)
    contacts = _get(td, ["contacts"]) or []
    contacts = contacts if isinstance(contacts, list) else []
    for i, row in enumerate(contacts):
        row = row if isinstance(row, dict) else {}
        for column, _label, _kind in CONTACT_COLUMNS:
            values[field_id(f"{TD}/contacts/{i}/{column}")] = _text(row.get(column))
    answers = _get(td, ["impact_assessment", "answers"]) or {}
    if isinstance(answers, dict):
        for qid in _question_ids():
            values[field_id(f"{ANSWERS}/{qid}")] = _text(answers.get(qid))
    return values, max(len(inputs) + 1, MIN_INPUT_ROWS), max(len(contacts) + 1, MIN_CONTACT_ROWS)


# --- form values → documents ---------------------------------------------------------------------------------------


def _scalar(kind: str, raw: str):
    """The JSON value for a field's text; text that is not the number it should be stays text (the schema says so)."""
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            return raw
    if kind == "number":
        try:
            return float(raw)
        except ValueError:
            return raw
    if kind == "lines":
        return [line.strip() for line in raw.splitlines() if line.strip()]
    return raw


def row_count(form: Mapping[str, str], name: str, minimum: int) -> int:
    try:
        return max(minimum, min(int(form.get(name, minimum)), 200))
    except ValueError:
        return minimum


def _rows(form: Mapping[str, str], prefix: str, columns, count: int) -> list[dict]:
    rows = []
    for i in range(count):
        row: dict = {}
        filled = False
        for column, _label, kind in columns:
            raw = (form.get(field_id(f"{prefix}/{i}/{column}")) or "").strip()
            if kind == "checkbox":
                row[column] = bool(raw)
            elif kind == "list":
                row[column] = [p.strip() for p in raw.replace("，", ",").split(",") if p.strip()]
                filled = filled or bool(raw)
            elif raw:
                row[column] = raw
                filled = True
        if filled:
            rows.append(row)
    return rows


def documents_from_form(
    form: Mapping[str, str],
    *,
    technical_document: dict | None,
    test_report: dict | None,
    input_rows: int,
    contact_rows: int,
) -> tuple[dict, dict | None]:
    """The documents the form describes, on top of ``technical_document`` / ``test_report`` (what is stored now).

    Fields the form does not show (extra figures, groups of the test report…) are kept as they are. An empty
    field removes its value. The test report is None when there is none and the form gives none of its fields.
    """
    td = copy.deepcopy(technical_document) if technical_document else {}
    tr = copy.deepcopy(test_report) if test_report else {}
    td["schema_version"] = "1"
    for f in DOCUMENT_FIELDS + REPORT_FIELDS:
        target, tokens = (td, _tokens(f.pointer)[1:]) if f.pointer.startswith(TD) else (tr, _tokens(f.pointer)[1:])
        raw = (form.get(f.id) or "").strip()
        value = _scalar(f.kind, raw) if raw else None
        if value is None or value == []:
            _delete(target, tokens)
        else:
            _set(target, tokens, value)
    if form.get(NO_THRESHOLD) and not (form.get(field_id(f"{TD}/model/output/decision_threshold")) or "").strip():
        _set(td, ["model", "output", "decision_threshold"], None)
    inputs = _rows(form, f"{TD}/model/inputs", INPUT_COLUMNS, input_rows)
    if inputs:
        _set(td, ["model", "inputs"], inputs)
    else:
        _delete(td, ["model", "inputs"])
    contacts = _rows(form, f"{TD}/contacts", CONTACT_COLUMNS, contact_rows)
    if contacts:
        td["contacts"] = contacts
    else:
        td.pop("contacts", None)
    answers = {}
    for qid in _question_ids():
        raw = (form.get(field_id(f"{ANSWERS}/{qid}")) or "").strip()
        if raw:
            answers[qid] = raw
    if answers:
        td["impact_assessment"] = {"questionnaire_version": risk.questionnaire()["version"], "answers": answers}
    else:
        td.pop("impact_assessment", None)
    if tr:
        tr["schema_version"] = "1"
        return td, tr
    return td, None


def parse_upload(data: bytes, *, pointer: str) -> tuple[dict | None, list[FieldError]]:
    """An uploaded JSON document, or the errors that say why it is not one (at ``pointer``)."""
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        return None, [
            FieldError(
                pointer,
                "json",
                f"The file is not valid JSON in UTF-8 ({exc}).",
                "文件不是有效的 UTF-8 编码 JSON。",
            )
        ]
    if not isinstance(document, dict):
        return None, [FieldError(pointer, "type", "The file must hold a JSON object.", "文件内容必须是 JSON 对象。")]
    return document, []
