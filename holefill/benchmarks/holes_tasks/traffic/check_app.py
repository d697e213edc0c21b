from controller import enter, is_safe_to_cross, next_light, update
from models import Light, Mode, PedestrianButton, SetMode, Signal, Tick


def ticks(signal, n):
    for _ in range(n):
        signal = update(signal, Tick())
    return signal


def test_next_light_cycle():
    assert next_light(Light.RED) is Light.GREEN
    assert next_light(Light.GREEN) is Light.YELLOW
    assert next_light(Light.YELLOW) is Light.RED


def test_enter_sets_duration():
    signal = enter(Signal(), Light.GREEN)
    assert signal.light is Light.GREEN and signal.seconds_left == 25
    assert enter(Signal(), Light.YELLOW).seconds_left == 5


def test_tick_counts_down():
    signal = ticks(Signal(), 3)
    assert signal.light is Light.RED and signal.seconds_left == 27


def test_red_turns_green():
    signal = ticks(Signal(), 30)
    assert signal.light is Light.GREEN and signal.seconds_left == 25


def test_full_cycle_counts():
    signal = ticks(Signal(), 30 + 25 + 5)
    assert signal.light is Light.RED and signal.cycles == 1


def test_night_mode_flashes():
    signal = update(update(Signal(), SetMode(Mode.NIGHT)), Tick())
    assert signal.mode is Mode.NIGHT and signal.light is Light.FLASHING


def test_set_mode_keeps_light():
    signal = update(Signal(light=Light.GREEN, seconds_left=7), SetMode(Mode.NIGHT))
    assert signal.mode is Mode.NIGHT and signal.light is Light.GREEN and signal.seconds_left == 7


def test_back_to_normal_starts_red():
    signal = update(ticks(update(Signal(), SetMode(Mode.NIGHT)), 2), SetMode(Mode.NORMAL))
    assert signal.light is Light.RED and signal.seconds_left == 30 and signal.mode is Mode.NORMAL


def test_pedestrian_shortens_green():
    signal = update(Signal(light=Light.GREEN, seconds_left=20), PedestrianButton())
    assert signal.seconds_left == 10


def test_safe_to_cross():
    assert is_safe_to_cross(Signal(light=Light.RED, seconds_left=20))
    assert not is_safe_to_cross(Signal(light=Light.RED, seconds_left=3))
    assert not is_safe_to_cross(Signal(light=Light.GREEN, seconds_left=20))
