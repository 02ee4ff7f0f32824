"""Use cases for cities."""

from sqlmodel import Session, select

from registry.cities.models import City

# Henan province (河南省): the cities of the demo and of the default installation.
HENAN = (
    ("410100", "郑州市", "Zhengzhou"),
    ("410300", "洛阳市", "Luoyang"),
    ("410500", "安阳市", "Anyang"),
    ("411000", "许昌市", "Xuchang"),
    ("410581", "林州市", "Linzhou"),
    ("410225", "兰考县", "Lankao"),
)


def list_cities(*, session: Session) -> list[City]:
    return list(session.exec(select(City).order_by(City.code)))


def get_city(*, session: Session, code: str) -> City | None:
    return session.get(City, code)


def add_city(*, session: Session, code: str, name_zh: str, name_en: str, province_code: str) -> City:
    """Add a city (or return the existing one with that code)."""
    city = session.get(City, code)
    if city is None:
        city = City(code=code, name_zh=name_zh, name_en=name_en, province_code=province_code)
        session.add(city)
        session.flush()
    return city
