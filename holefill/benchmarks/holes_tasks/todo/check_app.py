from models import AddTodo, ClearDone, DeleteTodo, Filter, Model, SetFilter, Todo, ToggleTodo
from update import remaining, toggled, update, visible


def run(*msgs):
    model = Model()
    for msg in msgs:
        model = update(model, msg)
    return model


def test_add_assigns_ids():
    model = run(AddTodo("milk"), AddTodo("eggs"))
    assert [(t.id, t.title, t.done) for t in model.todos] == [(1, "milk", False), (2, "eggs", False)]
    assert model.next_id == 3


def test_add_strips_and_skips_blank():
    model = run(AddTodo("  tea "), AddTodo("   "))
    assert [t.title for t in model.todos] == ["tea"]


def test_toggled_flips():
    assert toggled(Todo(1, "a")).done is True
    assert toggled(Todo(1, "a", True)).done is False
    assert toggled(Todo(4, "b")).id == 4


def test_toggle_message():
    model = run(AddTodo("a"), AddTodo("b"), ToggleTodo(2))
    assert [t.done for t in model.todos] == [False, True]


def test_delete():
    model = run(AddTodo("a"), AddTodo("b"), DeleteTodo(1))
    assert [t.title for t in model.todos] == ["b"]


def test_set_filter():
    model = run(SetFilter(Filter.DONE))
    assert model.filter is Filter.DONE
    assert run(SetFilter(Filter.ACTIVE)).filter is Filter.ACTIVE


def test_visible_active():
    model = run(AddTodo("a"), AddTodo("b"), ToggleTodo(1), SetFilter(Filter.ACTIVE))
    assert [t.title for t in visible(model)] == ["b"]


def test_visible_done_and_all():
    model = run(AddTodo("a"), AddTodo("b"), ToggleTodo(1))
    assert len(visible(model)) == 2
    assert [t.title for t in visible(replace_filter(model, Filter.DONE))] == ["a"]


def replace_filter(model, f):
    return update(model, SetFilter(f))


def test_remaining():
    model = run(AddTodo("a"), AddTodo("b"), AddTodo("c"), ToggleTodo(2))
    assert remaining(model) == 2
    assert remaining(Model()) == 0


def test_clear_done():
    model = run(AddTodo("a"), AddTodo("b"), ToggleTodo(1), ClearDone())
    assert [t.title for t in model.todos] == ["b"]
    assert model.next_id == 3
