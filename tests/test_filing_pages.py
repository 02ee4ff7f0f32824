"""The filing pages, as a city team and a reviewer use them: through the real login, forms and CSRF tokens."""

from __future__ import annotations

import io
import json
import re

from sqlmodel import Session, func, select

from registry import demo
from registry.filings.models import Filing
from tests.conftest import csrf_token

TD = "technical_document-"
TR = "test_report-"


def _count_filings(app) -> int:
    with Session(app.extensions["registry"].engine) as s:
        return s.exec(select(func.count()).select_from(Filing)).one()


def _state(app, filing_id: int) -> str:
    with Session(app.extensions["registry"].engine) as s:
        return s.get(Filing, filing_id).state


def _post(client, page_url: str, url: str, data: dict, **kw):
    """POST ``data`` to ``url`` with the CSRF token of the page at ``page_url``, as a browser would."""
    token = csrf_token(client.get(page_url).get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token}, **kw)


def _text(response) -> str:
    return response.get_data(as_text=True)


def _form_fields(**extra) -> dict:
    fields = {
        TD + "algorithm-name_zh": "养老金资格认定模型",
        TD + "algorithm-name_en": "Pension Eligibility Model",
        TD + "algorithm-version": "1.0.0",
        TD + "department": "郑州市人社局",
        TD + "scenario": "eligibility_determination",
        TD + "decision_role": "recommends_to_person",
        TD + "affected_population-estimated_decisions_per_year": "12000",
        TD + "legal_basis": "《社会保险法》\n《个人信息保护法》",
        TD + "model-inputs-0-name": "age_years",
        TD + "model-inputs-0-type": "numeric",
        TD + "model-inputs-0-description": "申请人年龄",
        TD + "model-inputs-0-personal_data": "y",
        TD + "model-inputs-0-sensitive_attribute": "y",
        TD + "contacts-0-name": "李明",
        TD + "contacts-0-role": "业务负责人",
        TD + "contacts-0-email": "li.ming@example.cn",
        TD + "impact_assessment-answers-decision_automation": "recommends_to_person",
        TR + "tester-organisation": "郑州市测试中心",
        TR + "overall-accuracy": "0.91",
        "input_rows": "3",
        "contact_rows": "2",
    }
    fields.update(extra)
    return fields


def test_city_team_creates_a_draft_by_form_and_sees_its_values(app, browser_as):
    client = browser_as("zhengzhou")
    response = _post(client, "/filings/new", "/filings/new", _form_fields())
    assert response.status_code == 303, _text(response)[:2000]
    page = client.get(response.headers["Location"])
    html = _text(page)
    assert page.status_code == 200
    for shown in (
        "养老金资格认定模型",
        "Pension Eligibility Model",
        "郑州市人社局",
        "《社会保险法》",
        "age_years",
        "李明",
        "li.ming@example.cn",
        "郑州市测试中心",
        "91.0 %",
        "草稿",
    ):
        assert shown in html, shown
    assert _count_filings(app) == 1


def test_add_row_shows_one_more_input_row_and_keeps_what_was_typed(app, browser_as):
    client = browser_as("zhengzhou")
    response = _post(client, "/filings/new", "/filings/new", _form_fields(add_input_row="1"))
    html = _text(response)
    assert response.status_code == 200
    assert f'id="{TD}model-inputs-3-name"' in html  # a fourth row
    assert 'value="Pension Eligibility Model"' in html
    assert _count_filings(app) == 0


def test_city_team_creates_a_draft_by_uploading_json(app, browser_as, documents):
    client = browser_as("zhengzhou")
    files = {
        "technical_document_file": (io.BytesIO(json.dumps(documents.technical_document).encode()), "td.json"),
        "test_report_file": (io.BytesIO(json.dumps(documents.test_report).encode()), "tr.json"),
    }
    response = _post(
        client,
        "/filings/new",
        "/filings/new",
        {"input_rows": "3", "contact_rows": "2", **files},
        content_type="multipart/form-data",
    )
    assert response.status_code == 303, _text(response)[:2000]
    html = _text(client.get(response.headers["Location"]))
    assert documents.technical_document["algorithm"]["name_zh"] in html
    assert "household_income_per_capita" in html
    assert "风险等级" in html and "最低生活保障" in html


def test_a_bad_email_and_a_non_integer_are_shown_beside_their_fields_and_nothing_is_saved(app, browser_as):
    client = browser_as("zhengzhou")
    response = _post(
        client,
        "/filings/new",
        "/filings/new",
        _form_fields(
            **{
                TD + "contacts-0-email": "not-an-address",
                TD + "affected_population-estimated_decisions_per_year": "about 12k",
            }
        ),
    )
    html = _text(response)
    assert response.status_code == 422
    assert _count_filings(app) == 0
    assert "出现问题" in html  # the error summary
    assert f'href="#{TD}contacts-0-email"' in html
    assert f'href="#{TD}affected_population-estimated_decisions_per_year"' in html
    # beside the field: the message sits before the input, and the input points at it
    email_field = re.search(
        rf'<p class="field-error" id="{TD}contacts-0-email-error-1">.*?</p>\s*<input[^>]*id="{TD}contacts-0-email"[^>]*>',
        html,
        re.S,
    )
    assert email_field and "电子邮件地址" in email_field.group(0)
    assert f'aria-describedby="{TD}contacts-0-email-error-1"' in email_field.group(0)
    assert "类型错误：应为整数" in html
    assert 'value="not-an-address"' in html and 'value="about 12k"' in html  # the input is kept


def test_errors_are_in_english_for_an_english_reader(app, browser_as):
    client = browser_as("zhengzhou")
    client.set_cookie("lang", "en")
    response = _post(
        client,
        "/filings/new",
        "/filings/new",
        _form_fields(**{TD + "affected_population-estimated_decisions_per_year": "many"}),
    )
    assert response.status_code == 422
    assert "Expected an integer" in _text(response)
    assert "There is a problem" in _text(response)


def test_city_team_uploads_a_valid_onnx_model(app, browser_as, filing_in):
    filing_id = filing_in("draft")
    client = browser_as("zhengzhou")
    model = demo.tiny_model_bytes()
    response = _post(
        client,
        f"/filings/{filing_id}",
        f"/filings/{filing_id}/attachments",
        {"file": (io.BytesIO(model), "pension.onnx")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    html = _text(client.get(f"/filings/{filing_id}"))
    assert "pension.onnx" in html
    assert f"{len(model):,}" in html


def test_a_file_that_is_not_onnx_is_refused_with_the_reason_on_the_page(app, browser_as, filing_in):
    filing_id = filing_in("draft")
    client = browser_as("zhengzhou")
    response = _post(
        client,
        f"/filings/{filing_id}",
        f"/filings/{filing_id}/attachments",
        {"file": (io.BytesIO(b"\x80\x04\x95 this is a pickle"), "model.pkl")},
        content_type="multipart/form-data",
    )
    html = _text(response)
    assert response.status_code == 422
    assert "文件未被接受" in html
    assert "ONNX" in html
    assert "model.pkl" not in html


def test_a_model_over_the_size_limit_is_refused_clearly(app, browser_as, filing_in):
    app.config["MAX_MODEL_BYTES"] = 100
    filing_id = filing_in("draft")
    client = browser_as("zhengzhou")
    response = _post(
        client,
        f"/filings/{filing_id}",
        f"/filings/{filing_id}/attachments",
        {"file": (io.BytesIO(demo.tiny_model_bytes()), "big.onnx")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert "文件未被接受" in _text(response)


def test_city_team_submits_a_complete_filing(app, browser_as, filing_in):
    filing_id = filing_in("draft")
    client = browser_as("zhengzhou")
    response = _post(client, f"/filings/{filing_id}", f"/filings/{filing_id}/actions/submit", {})
    assert response.status_code == 303
    assert _state(app, filing_id) == "submitted"
    html = _text(client.get(f"/filings/{filing_id}"))
    assert 'id="filing-state">已提交' in html


def test_an_incomplete_submission_lists_what_is_missing(app, browser_as):
    client = browser_as("zhengzhou")
    created = _post(client, "/filings/new", "/filings/new", _form_fields())
    filing_id = int(created.headers["Location"].rsplit("/", 1)[-1])
    response = _post(client, f"/filings/{filing_id}", f"/filings/{filing_id}/actions/submit", {})
    html = _text(response)
    assert response.status_code == 422
    assert "尚不能提交" in html
    assert "模型文件（ONNX）" in html  # /model, with a readable label
    assert "训练数据" in html  # /technical_document/training_data
    assert _state(app, filing_id) == "draft"


def test_another_city_gets_404_on_the_filing_page(app, browser_as, filing_in):
    filing_id = filing_in("draft")
    assert browser_as("luoyang").get(f"/filings/{filing_id}").status_code == 404
    assert browser_as("luoyang").get(f"/filings/{filing_id}/edit").status_code == 404


def test_review_round_trip_with_comment_answer_resubmission_and_history(app, browser_as, filing_in):
    filing_id = filing_in("under_review")
    reviewer = browser_as("reviewer1")
    response = _post(reviewer, f"/filings/{filing_id}", f"/filings/{filing_id}/actions/request_changes", {"reason": ""})
    assert response.status_code == 422 and "请说明理由" in _text(response)
    response = _post(
        reviewer,
        f"/filings/{filing_id}",
        f"/filings/{filing_id}/actions/request_changes",
        {"reason": "请补充农村家庭的分组指标。"},
    )
    assert response.status_code == 303
    _post(reviewer, f"/filings/{filing_id}", f"/filings/{filing_id}/comments", {"body": "请补充农村家庭的分组指标。"})

    city = browser_as("zhengzhou")
    html = _text(city.get(f"/filings/{filing_id}"))
    assert 'id="filing-state">需修改' in html
    assert "请补充农村家庭的分组指标。" in html
    assert (
        _post(
            city, f"/filings/{filing_id}", f"/filings/{filing_id}/comments", {"body": "已补充，见测试报告。"}
        ).status_code
        == 303
    )
    assert _post(city, f"/filings/{filing_id}", f"/filings/{filing_id}/actions/resubmit", {}).status_code == 303
    assert _state(app, filing_id) == "resubmitted"

    html = _text(reviewer.get(f"/filings/{filing_id}"))
    assert "已补充，见测试报告。" in html
    history = html.split('id="history"')[1].split('id="comments"')[0]
    for step in ("创建草稿", "提交", "开始审查", "要求修改", "重新提交"):
        assert step in history, step
    assert "请补充农村家庭的分组指标。" in history


def test_reviewer_only_notes_are_not_shown_to_the_city_team(app, browser_as, filing_in):
    filing_id = filing_in("under_review")
    reviewer = browser_as("reviewer1")
    _post(
        reviewer,
        f"/filings/{filing_id}",
        f"/filings/{filing_id}/comments",
        {"body": "内部意见：阈值偏低。", "reviewer_only": "y"},
    )
    assert "内部意见：阈值偏低。" in _text(reviewer.get(f"/filings/{filing_id}"))
    assert "内部意见：阈值偏低。" not in _text(browser_as("zhengzhou").get(f"/filings/{filing_id}"))


def test_an_illegal_step_says_what_is_possible_instead(app, browser_as, filing_in):
    filing_id = filing_in("submitted")
    response = _post(browser_as("zhengzhou"), f"/filings/{filing_id}", f"/filings/{filing_id}/actions/resubmit", {})
    html = _text(response)
    assert response.status_code == 409
    assert "撤回" in html  # withdraw is possible from submitted


def test_a_post_without_csrf_token_is_refused_and_changes_nothing(app, browser_as, filing_in):
    filing_id = filing_in("draft")
    client = browser_as("zhengzhou")
    assert client.post(f"/filings/{filing_id}/actions/withdraw").status_code == 400
    assert client.post("/filings/new", data=_form_fields()).status_code == 400
    assert _state(app, filing_id) == "draft"
    assert _count_filings(app) == 1


def test_the_list_filters_by_state_with_translated_labels(app, browser_as, filing_in):
    filing_in("draft")
    submitted = filing_in("submitted")
    client = browser_as("zhengzhou")
    html = _text(client.get("/filings?state=submitted"))
    assert f'/filings/{submitted}"' in html
    assert html.count('class="state state-') == 1
    assert "已提交" in html


def test_the_filing_page_explains_the_risk_score(app, browser_as, filing_in):
    filing_id = filing_in("draft")
    html = _text(browser_as("zhengzhou").get(f"/filings/{filing_id}"))
    assert "该算法在审批中起什么作用？" in html
    assert "原始风险分" in html and "等级划分" in html
    client = browser_as("zhengzhou")
    client.set_cookie("lang", "en")
    html = _text(client.get(f"/filings/{filing_id}"))
    assert "What role does the algorithm play in the approval?" in html
    assert "Raw risk score" in html


def test_a_request_over_the_upload_limit_gets_a_clear_page_not_a_500(app, browser_as, filing_in):
    filing_id = filing_in("draft")
    client = browser_as("zhengzhou")
    token = csrf_token(client.get(f"/filings/{filing_id}").get_data(as_text=True))
    body = (
        (
            f'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
            '--b\r\nContent-Disposition: form-data; name="file"; filename="huge.onnx"\r\n\r\n'
        ).encode()
        + b"\0" * (app.config["MAX_CONTENT_LENGTH"] + 1)
        + b"\r\n--b--\r\n"
    )
    response = client.post(
        f"/filings/{filing_id}/attachments", data=body, content_type="multipart/form-data; boundary=b"
    )
    assert response.status_code == 413
    assert "上传内容超过本备案库允许的大小" in _text(response)


def test_editing_a_draft_by_form_keeps_what_the_form_does_not_show(app, browser_as, filing_in, documents):
    filing_id = filing_in("draft")
    client = browser_as("zhengzhou")
    form = client.get(f"/filings/{filing_id}/edit")
    html = _text(form)
    assert form.status_code == 200
    assert 'value="household_income_per_capita"' in html  # the stored inputs fill the rows
    assert 'value="recommends_to_person" checked' in html  # and the questionnaire its radios
    # Submit the form as the browser would send it back, with one change.
    fields = {}
    for tag in re.findall(r"<input[^>]*>", html):
        named, valued = re.search(r'name="([^"]+)"', tag), re.search(r'value="([^"]*)"', tag)
        if named and valued and 'type="checkbox"' not in tag and 'type="radio"' not in tag:
            fields[named.group(1)] = valued.group(1)
    fields.update(
        {k: v for k, v in re.findall(r'<input type="radio"[^>]*name="([^"]+)" value="([^"]+)" checked', html)}
    )
    fields.update(dict(re.findall(r'<textarea id="[^"]+" name="([^"]+)"[^>]*>([^<]*)</textarea>', html)))
    for name, options in re.findall(r'<select id="[^"]+" name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', options)
        fields[name] = chosen.group(1) if chosen else ""
    fields.update(
        {k: "y" for k in re.findall(r'<input type="checkbox" id="[^"]+" name="([^"]+)" value="y" checked', html)}
    )
    fields[TD + "algorithm-version"] = "2.2.0"
    response = client.post(f"/filings/{filing_id}/edit", data=fields)
    assert response.status_code == 303, _text(response)[:3000]
    with Session(app.extensions["registry"].engine) as s:
        filing = s.get(Filing, filing_id)
        assert filing.algorithm_version == "2.2.0"
        assert filing.test_report["groups"] == documents.test_report["groups"]  # not in the form, kept
        assert filing.technical_document["model"]["inputs"] == documents.technical_document["model"]["inputs"]
        assert filing.risk_tier is not None
