"""A text buffer with a cursor, and the key events of a tiny editor."""

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Position:
    row: int
    col: int


class Direction(Enum):
    LEFT = "left"
    RIGHT = "right"
    UP = "up"
    DOWN = "down"


class Buffer:
    """Lines of text and a cursor; methods return new buffers."""

    def __init__(self, lines: list[str], cursor: Position) -> None:
        self.lines = lines
        self.cursor = cursor

    def line(self) -> str:
        return self.lines[self.cursor.row]

    def with_cursor(self, cursor: Position) -> "Buffer":
        return Buffer(list(self.lines), cursor)

    def with_line(self, text: str) -> "Buffer":
        lines = list(self.lines)
        lines[self.cursor.row] = text
        return Buffer(lines, self.cursor)


@dataclass(frozen=True)
class Insert:
    text: str


@dataclass(frozen=True)
class Backspace:
    pass


@dataclass(frozen=True)
class Move:
    direction: Direction


@dataclass(frozen=True)
class Enter:
    pass


Key = Insert | Backspace | Move | Enter
