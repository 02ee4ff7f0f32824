"""The translation catalogs: every text has a Chinese translation, the compiled catalogs are up to date, and a
reader who chose English gets English.

The Chinese catalog lives in ``zh_Hans_CN``: flask-babel looks catalogs up by babel's canonical name for the
``zh_CN`` locale, which is ``zh_Hans_CN``.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

TRANSLATIONS = Path(__file__).resolve().parents[1] / "registry" / "translations"
LANGUAGES = ("zh_Hans_CN", "en")


def _po(language: str):
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=language)


def _pair(message) -> tuple:
    """(id, string) of a message, hashable (plural forms come back as lists)."""

    def frozen(value):
        return tuple(value) if isinstance(value, list) else value

    return frozen(message.id), frozen(message.string)


def _ids(catalog) -> set:
    return {m.id for m in catalog if m.id}


def test_every_text_has_a_chinese_translation_that_is_not_fuzzy():
    with (TRANSLATIONS / "messages.pot").open("rb") as handle:
        template = read_po(handle)
    zh = _po("zh_Hans_CN")
    missing = []
    for message in template:
        if not message.id:
            continue
        translated = zh.get(message.id)
        strings = translated.string if translated is not None else None
        strings = strings if isinstance(strings, tuple) else (strings,)
        if translated is None or translated.fuzzy or not all(s and s.strip() for s in strings):
            missing.append(message.id)
    assert not missing, f"{len(missing)} texts without a Chinese translation: {missing[:10]}"
    assert not zh.fuzzy, "the catalog header is marked fuzzy"


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_has_exactly_the_template_texts(language):
    with (TRANSLATIONS / "messages.pot").open("rb") as handle:
        template = read_po(handle)
    assert _ids(_po(language)) == _ids(template), "run the extract/update steps in registry/babel.cfg"


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiled_catalog_matches_its_source(language):
    compiled = io.BytesIO()
    write_mo(compiled, _po(language))
    compiled.seek(0)
    expected = {_pair(m) for m in read_mo(compiled) if m.id}
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.mo").open("rb") as handle:
        committed = {_pair(m) for m in read_mo(handle) if m.id}
    assert committed == expected, f"{language}: messages.mo is stale; compile the catalogs"


def test_a_page_is_in_chinese_by_default_and_in_english_when_chosen(app, browser_as):
    client = browser_as("zhengzhou")
    chinese = client.get("/filings").get_data(as_text=True)
    assert '<html lang="zh-CN">' in chinese
    assert "您可查看的备案" in chinese and "Filings you can see" not in chinese

    client.set_cookie("lang", "en")
    english = client.get("/filings").get_data(as_text=True)
    assert '<html lang="en">' in english
    assert "Filings you can see" in english and "您可查看的备案" not in english


def test_the_language_switch_remembers_the_choice(app, browser_as):
    from tests.conftest import csrf_token

    client = browser_as("zhengzhou")
    page = client.get("/filings").get_data(as_text=True)
    response = client.post("/language", data={"lang": "en", "next": "/filings", "csrf_token": csrf_token(page)})
    assert response.status_code == 302
    assert "Filings you can see" in client.get("/filings").get_data(as_text=True)


def test_the_template_holds_every_text_in_the_code_and_pages():
    """A text added to a page or a view without re-extracting would show in English to a Chinese reader."""
    from babel.messages.extract import extract_from_dir

    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    found = {
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(TRANSLATIONS.parent),
            method_map,
            keywords={"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None},
        )
    }
    found = {m if isinstance(m, str) else m[0] for m in found}
    with (TRANSLATIONS / "messages.pot").open("rb") as handle:
        template = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id}
    assert found - template == set(), "run pybabel extract and update (see registry/babel.cfg)"


TEMPLATE = (
    '{{ _("Audit of %(date)s", date="<2026>") }}|{{ _("Log in") }}|{{ _("%(a)s %% done", a="<b>") }}|'
    '{{ ngettext("%(num)s file", "%(num)s files", 2) }}|{{ ngettext("%(num)s file", "%(num)s files", 1, num=7) }}'
)


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_the_per_page_gettext_writes_what_flask_babels_own_does(app, lang):
    """registry.i18n.page_gettext (bound once a page, for speed) against the callables Flask-Babel installs in the
    environment: the same translation, escaping and formatting."""
    from flask_babel import get_translations

    from registry.i18n import page_gettext

    with app.test_request_context(f"/?lang={lang}"):
        template = app.jinja_env.from_string(TEMPLATE)
        theirs = template.render()  # the environment's globals: Flask-Babel's
        ours = template.render(**page_gettext(get_translations()))
    assert ours == theirs
    assert "&lt;2026&gt;" in ours and "&lt;b&gt;" in ours
    assert ("审计" in ours or "登录" in ours) == (lang == "zh_CN")
