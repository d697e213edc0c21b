"""Commands applied to the player state (returns a new Player)."""

from dataclasses import replace

from models import (
    Command,
    Enqueue,
    Next,
    Pause,
    Play,
    Player,
    PlayState,
    Repeat,
    Seek,
    SetVolume,
    Track,
)


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def current(player: Player) -> Track | None:
    if 0 <= player.index < len(player.queue):
        return player.queue[player.index]  # HOLE
    return None


def remaining_seconds(player: Player) -> int:
    track = current(player)
    if track is None:
        return 0
    return track.seconds - player.position  # HOLE


def advance(player: Player) -> Player:
    if player.repeat == Repeat.ONE:
        return replace(player, position=0)
    index = player.index + 1
    if index >= len(player.queue):
        if player.repeat == Repeat.ALL:
            return replace(player, index=0, position=0)
        return replace(player, state=PlayState.STOPPED, index=0, position=0)  # HOLE
    return replace(player, index=index, position=0)


def apply(player: Player, command: Command) -> Player:
    if isinstance(command, Play):
        if not player.queue:
            return player
        return replace(player, state=PlayState.PLAYING)  # HOLE
    if isinstance(command, Pause):
        if player.state == PlayState.PLAYING:
            return replace(player, state=PlayState.PAUSED)
        return player
    if isinstance(command, Next):
        return advance(player)
    if isinstance(command, Seek):
        track = current(player)
        if track is None:
            return player
        return replace(player, position=clamp(command.seconds, 0, track.seconds))  # HOLE
    if isinstance(command, SetVolume):
        return replace(player, volume=clamp(command.level, 0, 100))  # HOLE
    if isinstance(command, Enqueue):
        return replace(player, queue=player.queue + [command.track])
    return player
