"""The census-income record as a user would model it with pydantic, by hand.

The same rules as schemas/census-income.schema: surrounding whitespace stripped,
``?`` or an empty value missing (None) for the optional attributes, categories as
``Literal`` types, inclusive ranges, no NaN or infinity, no unknown field; ``income`` (the
label of a training row) is accepted and not sent to the model. Written without amlproxy,
so that a peer's cold start imports pydantic and nothing of ours.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter


def _missing(value: Any) -> Any:
    return None if isinstance(value, str) and value.strip() in ("?", "") else value


Missing = BeforeValidator(_missing)

Workclass = Literal["Private", "Self-emp-not-inc", "Self-emp-inc", "Federal-gov", "Local-gov",
                    "State-gov", "Without-pay", "Never-worked"]
Education = Literal["Bachelors", "Some-college", "11th", "HS-grad", "Prof-school",
                    "Assoc-acdm", "Assoc-voc", "9th", "7th-8th", "12th", "Masters", "1st-4th",
                    "10th", "Doctorate", "5th-6th", "Preschool"]
MaritalStatus = Literal["Married-civ-spouse", "Divorced", "Never-married", "Separated",
                        "Widowed", "Married-spouse-absent", "Married-AF-spouse"]
Occupation = Literal["Tech-support", "Craft-repair", "Other-service", "Sales",
                     "Exec-managerial", "Prof-specialty", "Handlers-cleaners",
                     "Machine-op-inspct", "Adm-clerical", "Farming-fishing",
                     "Transport-moving", "Priv-house-serv", "Protective-serv", "Armed-Forces"]
Relationship = Literal["Wife", "Own-child", "Husband", "Not-in-family", "Other-relative",
                       "Unmarried"]
Race = Literal["White", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Black"]
Sex = Literal["Female", "Male"]
NativeCountry = Literal[
    "United-States", "Cambodia", "England", "Puerto-Rico", "Canada", "Germany",
    "Outlying-US(Guam-USVI-etc)", "India", "Japan", "Greece", "South", "China", "Cuba", "Iran",
    "Honduras", "Philippines", "Italy", "Poland", "Jamaica", "Vietnam", "Mexico", "Portugal",
    "Ireland", "France", "Dominican-Republic", "Laos", "Ecuador", "Taiwan", "Haiti",
    "Columbia", "Hungary", "Guatemala", "Nicaragua", "Scotland", "Thailand", "Yugoslavia",
    "El-Salvador", "Trinadad&Tobago", "Peru", "Hong", "Holand-Netherlands"]


class CensusRecord(BaseModel):
    """One census-income record (UCI Adult), validated."""

    model_config = ConfigDict(str_strip_whitespace=True, allow_inf_nan=False, extra="forbid",
                              populate_by_name=True)

    age: Annotated[float, Field(ge=0, le=150)]
    workclass: Annotated[Workclass | None, Missing] = None
    fnlwgt: Annotated[float, Field(ge=0)]
    education: Education
    education_num: Annotated[float, Field(ge=1, le=16, alias="education-num")]
    marital_status: Annotated[MaritalStatus, Field(alias="marital-status")]
    occupation: Annotated[Occupation | None, Missing] = None
    relationship: Relationship
    race: Race
    sex: Sex
    capital_gain: Annotated[float, Field(ge=0, alias="capital-gain")]
    capital_loss: Annotated[float, Field(ge=0, alias="capital-loss")]
    hours_per_week: Annotated[float, Field(ge=0, le=168, alias="hours-per-week")]
    native_country: Annotated[NativeCountry | None, Missing, Field(alias="native-country")] = None
    income: Annotated[Literal[">50K", "<=50K"] | None, Missing] = None  # the label: not sent

    def features(self) -> dict[str, Any]:
        """The record as the model takes it: attribute names, no label."""
        return self.model_dump(by_alias=True, exclude={"income"})


COLUMNS = ("age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
           "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
           "hours-per-week", "native-country", "income")
FEATURES = COLUMNS[:-1]
BATCH = TypeAdapter(list[CensusRecord])  # a whole batch in one call
