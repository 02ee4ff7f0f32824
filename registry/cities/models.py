"""The cities a province keeps filings for."""

from sqlmodel import Field, SQLModel


class CityBase(SQLModel):
    code: str = Field(primary_key=True, min_length=6, max_length=6, regex=r"^[1-9][0-9]{5}$")
    name_zh: str = Field(max_length=100)
    name_en: str = Field(max_length=100)


class City(CityBase, table=True):
    province_code: str = Field(max_length=6)


class CityPublic(CityBase):
    pass
