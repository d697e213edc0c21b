from game import is_full, other, place, step, winner_of
from models import Game, Mark, Outcome, Place, Restart


def play(*indices, game=None):
    game = game or Game()
    for index in indices:
        game = step(game, Place(index))
    return game


def test_other():
    assert other(Mark.X) is Mark.O and other(Mark.O) is Mark.X


def test_place_returns_new_cells():
    cells = place((None,) * 9, 4, Mark.X)
    assert cells[4] is Mark.X and cells.count(None) == 8 and len(cells) == 9


def test_turns_alternate():
    game = play(0, 4)
    assert game.cells[0] is Mark.X and game.cells[4] is Mark.O and game.turn is Mark.X


def test_occupied_cell_is_ignored():
    assert play(0, 0) == play(0)


def test_row_wins():
    game = play(0, 3, 1, 4, 2)
    assert game.outcome is Outcome.WON and game.winner is Mark.X
    assert winner_of(game.cells) is Mark.X


def test_no_moves_after_win():
    game = play(0, 3, 1, 4, 2, 5)
    assert game.cells[5] is None


def test_diagonal_win_for_o():
    game = play(1, 0, 2, 4, 3, 8)
    assert game.winner is Mark.O and game.outcome is Outcome.WON


def test_draw():
    game = play(0, 1, 2, 4, 3, 5, 7, 6, 8)
    assert game.outcome is Outcome.DRAW and game.winner is None
    assert is_full(game.cells) and not is_full(play(0).cells)


def test_winner_of_empty():
    assert winner_of((None,) * 9) is None


def test_restart():
    game = step(play(0, 1, 2), Restart(Mark.O))
    assert game.cells == (None,) * 9 and game.turn is Mark.O and game.outcome is Outcome.PLAYING
