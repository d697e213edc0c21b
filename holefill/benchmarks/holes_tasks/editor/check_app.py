from editing import clamp_col, empty, handle, move
from models import Backspace, Buffer, Direction, Enter, Insert, Move, Position


def typed(*keys, buffer=None):
    buffer = buffer or empty()
    for key in keys:
        buffer = handle(buffer, key)
    return buffer


def test_empty():
    buffer = empty()
    assert buffer.lines == [""] and buffer.cursor == Position(0, 0)


def test_insert_moves_cursor():
    buffer = typed(Insert("hello"), Insert(" you"))
    assert buffer.lines == ["hello you"] and buffer.cursor == Position(0, 9)


def test_insert_in_the_middle():
    buffer = typed(Insert("held"), Move(Direction.LEFT), Move(Direction.LEFT), Insert("l"))
    assert buffer.lines == ["helld"] and buffer.cursor == Position(0, 3)


def test_enter_splits_line():
    buffer = typed(Insert("abcd"), Move(Direction.LEFT), Enter())
    assert buffer.lines == ["abc", "d"] and buffer.cursor == Position(1, 0)


def test_backspace_joins_lines():
    buffer = typed(Insert("ab"), Enter(), Insert("c"), Backspace(), Backspace())
    assert buffer.lines == ["ab"] and buffer.cursor == Position(0, 2)


def test_left_wraps_to_previous_line():
    buffer = typed(Insert("xy"), Enter(), Move(Direction.LEFT))
    assert buffer.cursor == Position(0, 2)
    assert move(Buffer(["a"], Position(0, 1)), Direction.LEFT).cursor == Position(0, 0)


def test_right_wraps_to_next_line():
    buffer = Buffer(["ab", "c"], Position(0, 2))
    assert move(buffer, Direction.RIGHT).cursor == Position(1, 0)


def test_clamp_col():
    buffer = Buffer(["abc", "x"], Position(0, 0))
    assert clamp_col(buffer, 1, 3) == Position(1, 1)
    assert clamp_col(buffer, 0, 2) == Position(0, 2)


def test_down_and_up_clamp():
    buffer = Buffer(["hello", "hi", "there"], Position(0, 4))
    down = move(buffer, Direction.DOWN)
    assert down.cursor == Position(1, 2)
    assert move(down, Direction.DOWN).cursor == Position(2, 2)
    assert move(down, Direction.UP).cursor == Position(0, 2)
    assert move(Buffer(["a"], Position(0, 0)), Direction.DOWN).cursor == Position(0, 0)
