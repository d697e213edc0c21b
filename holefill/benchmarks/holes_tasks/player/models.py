"""State of a music player and the commands it accepts."""

from dataclasses import dataclass, field
from enum import Enum


class PlayState(Enum):
    STOPPED = "stopped"
    PLAYING = "playing"
    PAUSED = "paused"


class Repeat(Enum):
    OFF = "off"
    ALL = "all"
    ONE = "one"


@dataclass
class Track:
    title: str
    artist: str
    seconds: int


@dataclass
class Player:
    queue: list[Track] = field(default_factory=list)
    index: int = 0
    state: PlayState = PlayState.STOPPED
    position: int = 0
    volume: int = 50
    repeat: Repeat = Repeat.OFF


@dataclass
class Play:
    pass


@dataclass
class Pause:
    pass


@dataclass
class Next:
    pass


@dataclass
class Seek:
    seconds: int


@dataclass
class SetVolume:
    level: int


@dataclass
class Enqueue:
    track: Track


Command = Play | Pause | Next | Seek | SetVolume | Enqueue
