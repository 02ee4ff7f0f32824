"""Languages: Simplified Chinese (the default) and English, chosen by a cookie that the language switch sets."""

from __future__ import annotations

from flask import Flask, current_app, request
from flask_babel import Babel, get_locale, get_translations
from jinja2 import pass_eval_context
from markupsafe import Markup

LANGUAGE_COOKIE = "lang"
babel = Babel()


def select_locale() -> str:
    wanted = request.args.get("lang") or request.cookies.get(LANGUAGE_COOKIE)
    languages = current_app.config["LANGUAGES"]
    return wanted if wanted in languages else current_app.config["BABEL_DEFAULT_LOCALE"]


def is_chinese() -> bool:
    return str(get_locale()).startswith("zh")


def pick(zh: str | None, en: str | None) -> str:
    """The text in the reader's language, falling back to the other one when it is empty."""
    return (zh or en or "") if is_chinese() else (en or zh or "")


def page_gettext(translations) -> dict:
    """``_``, ``gettext`` and ``ngettext`` for one page, bound to the reader's ``translations``: looked up once a
    page rather than at every string (a library entry writes about a thousand, and Flask-Babel's own callables
    look the translations up each time), with the semantics of Jinja's newstyle gettext that Flask-Babel
    installs: the text is escaped unless marked safe, and always formatted with its keyword arguments."""
    ugettext, ungettext = translations.ugettext, translations.ungettext

    @pass_eval_context
    def gettext(eval_ctx, string: str, /, **variables) -> str:
        text = ugettext(string)
        return (Markup(text) if eval_ctx.autoescape else text) % variables  # noqa: S704 (our catalog, as Jinja)

    @pass_eval_context
    def ngettext(eval_ctx, singular: str, plural: str, num: int, /, **variables) -> str:
        variables.setdefault("num", num)
        text = ungettext(singular, plural, num)
        return (Markup(text) if eval_ctx.autoescape else text) % variables  # noqa: S704 (our catalog, as Jinja)

    return {"_": gettext, "gettext": gettext, "ngettext": ngettext}


def page_pick(chinese: bool):
    """:func:`pick` for one page, whose language is known once (Chinese if ``chinese``)."""
    if chinese:
        return lambda zh, en: zh or en or ""
    return lambda zh, en: en or zh or ""


def _page_context() -> dict:
    chinese = is_chinese()
    return page_gettext(get_translations()) | {"pick": page_pick(chinese), "is_chinese": lambda: chinese}


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale, default_translation_directories="translations")
    app.jinja_env.globals.update(pick=pick, is_chinese=is_chinese, get_locale=get_locale)
    # Each page's context: these take the place of the environment's callables in the page and what it includes.
    app.context_processor(_page_context)
