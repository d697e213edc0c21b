"""Validation and event handling of the sign-up form."""

from dataclasses import replace

from models import Edit, FieldName, Form, FormEvent, Problem, Reset, Stage, Submission, Submit


def value(form: Form, name: FieldName) -> str:
    return form.values.get(name, "").strip()  # HOLE


def validate(form: Form) -> list[Problem]:
    problems: list[Problem] = []
    if not value(form, FieldName.NAME):
        problems.append(Problem(FieldName.NAME, "required"))  # HOLE
    if "@" not in value(form, FieldName.EMAIL):
        problems.append(Problem(FieldName.EMAIL, "invalid email"))
    age = value(form, FieldName.AGE)
    if not age.isdigit() or int(age) < 13:
        problems.append(Problem(FieldName.AGE, "must be 13 or older"))
    return problems


def submission(form: Form) -> Submission:
    return Submission(name=value(form, FieldName.NAME), email=value(form, FieldName.EMAIL), age=int(value(form, FieldName.AGE)))  # HOLE


def handle(form: Form, event: FormEvent) -> Form:
    if form.stage == Stage.SUBMITTED:
        return form
    if isinstance(event, Edit):
        values = {**form.values, event.field: event.value}  # HOLE
        return replace(form, values=values, stage=Stage.EDITING)
    if isinstance(event, Submit):
        problems = validate(form)
        if problems:
            return replace(form, problems=problems, stage=Stage.INVALID, attempts=form.attempts + 1)  # HOLE
        return replace(form, problems=[], stage=Stage.SUBMITTED, attempts=form.attempts + 1)
    if isinstance(event, Reset):
        return Form()  # HOLE
    return form
