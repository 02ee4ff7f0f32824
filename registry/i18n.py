"""Languages: Simplified Chinese (the default) and English, chosen by a cookie that the language switch sets."""

from __future__ import annotations

from flask import Flask, current_app, request
from flask_babel import Babel, get_locale

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


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale, default_translation_directories="translations")
    app.jinja_env.globals.update(pick=pick, is_chinese=is_chinese, get_locale=get_locale)
