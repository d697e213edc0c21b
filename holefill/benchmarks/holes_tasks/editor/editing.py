"""Key handling of the editor."""

from models import Backspace, Buffer, Direction, Enter, Insert, Key, Move, Position


def empty() -> Buffer:
    return Buffer([""], Position(0, 0))  # HOLE


def clamp_col(buffer: Buffer, row: int, col: int) -> Position:
    return Position(row, min(col, len(buffer.lines[row])))  # HOLE


def move(buffer: Buffer, direction: Direction) -> Buffer:
    row, col = buffer.cursor.row, buffer.cursor.col
    if direction == Direction.LEFT:
        if col > 0:
            return buffer.with_cursor(Position(row, col - 1))  # HOLE
        if row > 0:
            return buffer.with_cursor(Position(row - 1, len(buffer.lines[row - 1])))
        return buffer
    if direction == Direction.RIGHT:
        if col < len(buffer.line()):
            return buffer.with_cursor(Position(row, col + 1))
        if row + 1 < len(buffer.lines):
            return buffer.with_cursor(Position(row + 1, 0))
        return buffer
    if direction == Direction.UP and row > 0:
        return buffer.with_cursor(clamp_col(buffer, row - 1, col))
    if direction == Direction.DOWN and row + 1 < len(buffer.lines):
        return buffer.with_cursor(clamp_col(buffer, row + 1, col))  # HOLE
    return buffer


def handle(buffer: Buffer, key: Key) -> Buffer:
    row, col = buffer.cursor.row, buffer.cursor.col
    text = buffer.line()
    if isinstance(key, Insert):
        changed = buffer.with_line(text[:col] + key.text + text[col:])
        return changed.with_cursor(Position(row, col + len(key.text)))  # HOLE
    if isinstance(key, Backspace):
        if col > 0:
            return buffer.with_line(text[:col - 1] + text[col:]).with_cursor(Position(row, col - 1))
        if row == 0:
            return buffer
        previous = buffer.lines[row - 1]
        lines = buffer.lines[:row - 1] + [previous + text] + buffer.lines[row + 1:]
        return Buffer(lines, Position(row - 1, len(previous)))
    if isinstance(key, Move):
        return move(buffer, key.direction)
    if isinstance(key, Enter):
        lines = buffer.lines[:row] + [text[:col], text[col:]] + buffer.lines[row + 1:]
        return Buffer(lines, Position(row + 1, 0))  # HOLE
    return buffer
