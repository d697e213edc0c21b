"""A sign-up form: fields, validation problems and form events."""

from dataclasses import dataclass, field
from enum import Enum
from typing import TypedDict


class FieldName(Enum):
    NAME = "name"
    EMAIL = "email"
    AGE = "age"


class Stage(Enum):
    EDITING = "editing"
    INVALID = "invalid"
    SUBMITTED = "submitted"


@dataclass(frozen=True)
class Problem:
    field: FieldName
    message: str


@dataclass
class Form:
    values: dict[FieldName, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    stage: Stage = Stage.EDITING
    attempts: int = 0


class Submission(TypedDict):
    name: str
    email: str
    age: int


@dataclass(frozen=True)
class Edit:
    field: FieldName
    value: str


@dataclass(frozen=True)
class Submit:
    pass


@dataclass(frozen=True)
class Reset:
    pass


FormEvent = Edit | Submit | Reset
