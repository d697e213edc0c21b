"""Fill-in-the-middle templates: detection from a vocabulary, overrides, the repository format
and the suffix window (no model needed)."""

from __future__ import annotations

import pytest

from holefill.completion import fim

QWEN = {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>", "<|repo_name|>",
        "<|file_sep|>", "<|endoftext|>", "hello"}
STARCODER2 = {"<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<repo_name>",
              "<file_sep>", "<|endoftext|>"}
STARCODER1 = {"<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<reponame>",
              "<filename>", "<|endoftext|>"}
DEEPSEEK = {"<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", "<｜end▁of▁sentence｜>"}
CODELLAMA = {"▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"}
SMOLLM = {"<|im_start|>", "<|im_end|>", "<|endoftext|>", "def"}


@pytest.mark.parametrize("vocab, family", [(QWEN, "qwen"), (STARCODER2, "starcoder"),
                                           (STARCODER1, "starcoder"), (DEEPSEEK, "deepseek"),
                                           (CODELLAMA, "codellama")])
def test_the_family_is_detected_from_the_vocabulary(vocab, family):
    template = fim.detect(vocab)
    assert template is not None and template.family == family
    assert all(t in vocab for t in (template.prefix, template.suffix, template.middle))


def test_a_model_without_fim_tokens_has_no_template():
    assert fim.detect(SMOLLM) is None
    assert fim.resolve("auto", vocab=SMOLLM) is None


def test_starcoder_repository_tokens_follow_the_vocabulary():
    assert fim.detect(STARCODER2).file_sep == "<file_sep>"
    assert fim.detect(STARCODER2).repo_name == "<repo_name>"
    one = fim.detect(STARCODER1)  # StarCoder 1: no <file_sep>, so no repository format
    assert one.file_sep is None and one.repo_name is None


def test_resolve_modes():
    assert fim.resolve("off", vocab=QWEN) is None
    assert fim.resolve("auto", vocab=QWEN).family == "qwen"
    assert fim.resolve("qwen", vocab=QWEN).family == "qwen"
    with pytest.raises(ValueError, match="has no <fim_prefix>"):
        fim.resolve("starcoder", vocab=QWEN)  # an override must fit the tokenizer
    with pytest.raises(ValueError, match="is not one of"):
        fim.resolve("psm", vocab=QWEN)


@pytest.mark.parametrize("name, family", [
    ("Qwen/Qwen2.5-Coder-7B", "qwen"), ("bigcode/starcoder2-15b", "starcoder"),
    ("deepseek-ai/deepseek-coder-6.7b-base", "deepseek"), ("codellama/CodeLlama-7b-hf",
                                                          "codellama"),
    ("meta-llama/Llama-3.1-8B", None), ("Qwen/Qwen2.5-7B-Instruct", None)])
def test_a_served_model_id_names_its_family(name, family):
    found = fim.resolve("auto", model_name=name)
    assert (found.family if found else None) == family


def test_qwen_repository_format():
    t = fim.TEMPLATES["qwen"]
    head = t.head([("pkg/models.py", "class Item:\n    price: float"),
                   ("util.py", "def f(): ...\n")], "pkg/app.py", "shop")
    assert head == ("<|repo_name|>shop\n<|file_sep|>pkg/models.py\nclass Item:\n    price: float\n"
                    "<|file_sep|>util.py\ndef f(): ...\n<|file_sep|>pkg/app.py\n")
    parts = t.head_parts([("a.py", "x = 1\n")], "b.py", None)
    assert parts == [("<|file_sep|>", True), ("a.py\nx = 1\n", False), ("<|file_sep|>", True),
                     ("b.py\n", False)]
    assert t.prompt("def f():\n    ", "\n    return x\n", head="H") == (
        "H<|fim_prefix|>def f():\n    <|fim_suffix|>\n    return x\n<|fim_middle|>")


def test_no_snippets_give_plain_fim():
    assert fim.TEMPLATES["qwen"].head([], "a.py", "repo") == ""


def test_families_without_repository_tokens_name_files_in_comments():
    head = fim.TEMPLATES["deepseek"].head([("models.py", "class A: ...")], "app.py", "repo")
    assert head == "# models.py\nclass A: ...\n# app.py\n"
    assert "<" not in fim.TEMPLATES["codellama"].head([("m.py", "x = 1")], "a.py", None)


def test_the_suffix_window_stays_put_while_the_cursor_moves_within_a_block():
    doc = "".join(f"line {i:04d} = {i}\n" for i in range(400))  # 17 characters a line
    ends = {fim.suffix_window(doc, cursor, 600) for cursor in range(1030, 1090)}
    assert len(ends) == 1
    end = ends.pop()
    assert doc[end - 1] == "\n" and end >= 1090 + 600 - 512  # a line end, about `chars` on
    assert fim.suffix_window(doc, len(doc) - 5, 600) == len(doc)
    assert fim.suffix_window(doc, 100, 0) == 100
