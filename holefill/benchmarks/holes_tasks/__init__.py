"""Fixtures of `holefill bench holes`: small multi-module apps with typed holes.

Each folder is one app: `models.py` (state and message types: dataclasses, enums, aliases),
one or more logic modules whose lines ending in `# HOLE` are the tasks, and `check_app.py` with
plain `test_*` functions over the app. `_runner.py` runs them in a subprocess and prints the
results as JSON. These files are the benchmark's own fixtures (written for holefill); the
benchmark copies an app to a temporary folder, fills one hole and runs its tests there.
"""
