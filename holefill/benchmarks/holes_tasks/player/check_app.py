from models import Enqueue, Next, Pause, Play, Player, PlayState, Repeat, Seek, SetVolume, Track
from player import apply, current, remaining_seconds

A = Track("Intro", "Band", 120)
B = Track("Song", "Band", 200)


def run(player, *commands):
    for command in commands:
        player = apply(player, command)
    return player


def loaded(**kwargs):
    return run(Player(**kwargs), Enqueue(A), Enqueue(B))


def test_enqueue_and_current():
    player = loaded()
    assert current(player) == A
    assert current(Player()) is None


def test_play_needs_queue():
    assert run(Player(), Play()).state is PlayState.STOPPED
    assert run(loaded(), Play()).state is PlayState.PLAYING


def test_pause_only_when_playing():
    assert run(loaded(), Play(), Pause()).state is PlayState.PAUSED
    assert run(loaded(), Pause()).state is PlayState.STOPPED


def test_next_moves_and_resets_position():
    player = run(loaded(), Play(), Seek(30), Next())
    assert current(player) == B and player.position == 0


def test_end_of_queue_stops():
    player = run(loaded(), Play(), Next(), Next())
    assert player.state is PlayState.STOPPED and player.index == 0 and player.position == 0


def test_repeat_all_wraps_and_keeps_playing():
    player = run(loaded(repeat=Repeat.ALL), Play(), Next(), Next())
    assert player.index == 0 and player.state is PlayState.PLAYING


def test_repeat_one():
    player = run(loaded(repeat=Repeat.ONE), Play(), Seek(50), Next())
    assert player.index == 0 and player.position == 0


def test_seek_is_clamped():
    assert run(loaded(), Seek(500)).position == 120
    assert run(loaded(), Seek(-3)).position == 0
    assert run(loaded(), Seek(42)).position == 42


def test_remaining_seconds():
    assert remaining_seconds(run(loaded(), Seek(20))) == 100
    assert remaining_seconds(Player()) == 0


def test_volume_is_clamped():
    assert run(loaded(), SetVolume(130)).volume == 100
    assert run(loaded(), SetVolume(-5)).volume == 0
    assert run(loaded(), SetVolume(35)).volume == 35
