"""Merge-conflict resolution (MergeBERT-style): token-level diff3, primitive patterns, a small
classifier, and a resolver that abstains unless confident and syntactically valid.

Modules: ``diff3`` (line/token three-way merge), ``patterns`` (candidates), ``classifier``
(features + model, weights in ``classifier_weights.json``), ``resolver`` (files, merge driver
core), ``cli`` (``resolve`` and ``merge-driver`` subcommands), ``lsp`` (plain-data API for the
language server).
"""
