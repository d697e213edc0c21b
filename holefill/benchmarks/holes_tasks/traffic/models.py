"""State of a traffic signal and the events it reacts to."""

from dataclasses import dataclass
from enum import Enum, auto


class Light(Enum):
    RED = auto()
    GREEN = auto()
    YELLOW = auto()
    FLASHING = auto()


class Mode(Enum):
    NORMAL = auto()
    NIGHT = auto()


@dataclass(frozen=True)
class Signal:
    light: Light = Light.RED
    seconds_left: int = 30
    mode: Mode = Mode.NORMAL
    cycles: int = 0


@dataclass(frozen=True)
class Tick:
    pass


@dataclass(frozen=True)
class SetMode:
    mode: Mode


@dataclass(frozen=True)
class PedestrianButton:
    pass


Event = Tick | SetMode | PedestrianButton
