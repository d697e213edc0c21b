from form import handle, submission, validate, value
from models import Edit, FieldName, Form, Problem, Reset, Stage, Submit


def fill(*events, form=None):
    form = form or Form()
    for event in events:
        form = handle(form, event)
    return form


GOOD = (Edit(FieldName.NAME, " Ada "), Edit(FieldName.EMAIL, "ada@example.org"),
        Edit(FieldName.AGE, "36"))


def test_value_strips_and_defaults():
    form = fill(Edit(FieldName.NAME, "  Bo "))
    assert value(form, FieldName.NAME) == "Bo" and value(form, FieldName.EMAIL) == ""


def test_edit_keeps_other_fields():
    form = fill(Edit(FieldName.NAME, "A"), Edit(FieldName.AGE, "20"), Edit(FieldName.NAME, "B"))
    assert form.values == {FieldName.NAME: "B", FieldName.AGE: "20"}


def test_validate_empty_form():
    problems = validate(Form())
    assert [p.field for p in problems] == [FieldName.NAME, FieldName.EMAIL, FieldName.AGE]
    assert problems[0] == Problem(FieldName.NAME, "required")


def test_validate_good_form():
    assert validate(fill(*GOOD)) == []


def test_submit_invalid_counts_attempts():
    form = fill(Edit(FieldName.NAME, "x"), Submit(), Submit())
    assert form.stage is Stage.INVALID and form.attempts == 2
    assert [p.field for p in form.problems] == [FieldName.EMAIL, FieldName.AGE]


def test_submit_valid():
    form = fill(*GOOD, Submit())
    assert form.stage is Stage.SUBMITTED and form.problems == [] and form.attempts == 1


def test_edit_after_invalid_goes_back_to_editing():
    form = fill(Submit(), Edit(FieldName.NAME, "x"))
    assert form.stage is Stage.EDITING


def test_submitted_form_is_final():
    form = fill(*GOOD, Submit(), Edit(FieldName.NAME, "Eve"), Reset())
    assert form.stage is Stage.SUBMITTED and value(form, FieldName.NAME) == "Ada"


def test_reset():
    form = fill(Edit(FieldName.NAME, "x"), Submit(), Reset())
    assert form == Form()


def test_submission():
    assert submission(fill(*GOOD)) == {"name": "Ada", "email": "ada@example.org", "age": 36}
