"""Rules of tic-tac-toe."""

from dataclasses import replace

from models import Action, Cells, Game, Mark, Outcome, Place, Restart

LINES = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]


def other(mark: Mark) -> Mark:
    return Mark.O if mark == Mark.X else Mark.X  # HOLE


def winner_of(cells: Cells) -> Mark | None:
    for a, b, c in LINES:
        if cells[a] is not None and cells[a] == cells[b] == cells[c]:
            return cells[a]  # HOLE
    return None


def is_full(cells: Cells) -> bool:
    return all(cell is not None for cell in cells)  # HOLE


def place(cells: Cells, index: int, mark: Mark) -> Cells:
    return cells[:index] + (mark,) + cells[index + 1:]  # HOLE


def step(game: Game, action: Action) -> Game:
    if isinstance(action, Restart):
        return Game(turn=action.first)  # HOLE
    if isinstance(action, Place):
        if game.outcome != Outcome.PLAYING or not 0 <= action.index < 9:
            return game
        if game.cells[action.index] is not None:
            return game
        cells = place(game.cells, action.index, game.turn)
        won = winner_of(cells)
        if won is not None:
            return replace(game, cells=cells, outcome=Outcome.WON, winner=won)  # HOLE
        if is_full(cells):
            return replace(game, cells=cells, outcome=Outcome.DRAW)
        return replace(game, cells=cells, turn=other(game.turn))
    return game
