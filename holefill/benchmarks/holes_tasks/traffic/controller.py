"""Timing rules of the signal controller."""

from dataclasses import replace

from models import Event, Light, Mode, PedestrianButton, SetMode, Signal, Tick

DURATIONS: dict[Light, int] = {Light.RED: 30, Light.GREEN: 25, Light.YELLOW: 5}


def next_light(light: Light) -> Light:
    if light == Light.RED:
        return Light.GREEN  # HOLE
    if light == Light.GREEN:
        return Light.YELLOW
    return Light.RED


def enter(signal: Signal, light: Light) -> Signal:
    return replace(signal, light=light, seconds_left=DURATIONS[light])  # HOLE


def is_safe_to_cross(signal: Signal) -> bool:
    return signal.light == Light.RED and signal.seconds_left > 5  # HOLE


def update(signal: Signal, event: Event) -> Signal:
    match event:
        case Tick():
            if signal.mode == Mode.NIGHT:
                return replace(signal, light=Light.FLASHING, seconds_left=0)
            if signal.seconds_left > 1:
                return replace(signal, seconds_left=signal.seconds_left - 1)  # HOLE
            after = enter(signal, next_light(signal.light))
            if after.light == Light.RED:
                return replace(after, cycles=signal.cycles + 1)
            return after
        case SetMode(mode=mode):
            if mode == Mode.NORMAL and signal.mode == Mode.NIGHT:
                return enter(replace(signal, mode=mode), Light.RED)
            return replace(signal, mode=mode)  # HOLE
        case PedestrianButton():
            if signal.light == Light.GREEN and signal.seconds_left > 10:
                return replace(signal, seconds_left=10)
            return signal
    return signal
