"""State and messages of a to-do list."""

from dataclasses import dataclass
from enum import Enum


class Filter(Enum):
    ALL = "all"
    ACTIVE = "active"
    DONE = "done"


@dataclass(frozen=True)
class Todo:
    id: int
    title: str
    done: bool = False


@dataclass(frozen=True)
class Model:
    todos: tuple[Todo, ...] = ()
    next_id: int = 1
    filter: Filter = Filter.ALL


@dataclass(frozen=True)
class AddTodo:
    title: str


@dataclass(frozen=True)
class ToggleTodo:
    id: int


@dataclass(frozen=True)
class DeleteTodo:
    id: int


@dataclass(frozen=True)
class SetFilter:
    filter: Filter


@dataclass(frozen=True)
class ClearDone:
    pass


Msg = AddTodo | ToggleTodo | DeleteTodo | SetFilter | ClearDone
