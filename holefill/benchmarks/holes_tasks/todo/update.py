"""The update function of the to-do list."""

from dataclasses import replace

from models import AddTodo, ClearDone, DeleteTodo, Filter, Model, Msg, SetFilter, Todo, ToggleTodo


def toggled(todo: Todo) -> Todo:
    return replace(todo, done=not todo.done)  # HOLE


def visible(model: Model) -> list[Todo]:
    if model.filter == Filter.ACTIVE:
        return [t for t in model.todos if not t.done]  # HOLE
    if model.filter == Filter.DONE:
        return [t for t in model.todos if t.done]
    return list(model.todos)


def remaining(model: Model) -> int:
    return sum(1 for t in model.todos if not t.done)  # HOLE


def update(model: Model, msg: Msg) -> Model:
    if isinstance(msg, AddTodo):
        title = msg.title.strip()
        if not title:
            return model
        todo = Todo(id=model.next_id, title=title)  # HOLE
        return replace(model, todos=model.todos + (todo,), next_id=model.next_id + 1)
    if isinstance(msg, ToggleTodo):
        todos = tuple(toggled(t) if t.id == msg.id else t for t in model.todos)
        return replace(model, todos=todos)
    if isinstance(msg, DeleteTodo):
        return replace(model, todos=tuple(t for t in model.todos if t.id != msg.id))
    if isinstance(msg, SetFilter):
        return replace(model, filter=msg.filter)  # HOLE
    if isinstance(msg, ClearDone):
        todos = tuple(t for t in model.todos if not t.done)  # HOLE
        return replace(model, todos=todos)
    return model
