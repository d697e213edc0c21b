"""Board and game state of tic-tac-toe."""

from dataclasses import dataclass
from enum import Enum


class Mark(Enum):
    X = "X"
    O = "O"  # noqa: E741


class Outcome(Enum):
    PLAYING = "playing"
    WON = "won"
    DRAW = "draw"


Cells = tuple[Mark | None, ...]


@dataclass(frozen=True)
class Game:
    cells: Cells = (None,) * 9
    turn: Mark = Mark.X
    outcome: Outcome = Outcome.PLAYING
    winner: Mark | None = None


@dataclass(frozen=True)
class Place:
    index: int


@dataclass(frozen=True)
class Restart:
    first: Mark = Mark.X


Action = Place | Restart
