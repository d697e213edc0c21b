"""Fill-in-the-middle prompt templates per model family (no torch here: the remote backend and
`holefill context` use it too).

A FIM-trained model sees the text after the cursor as well: prefix-suffix-middle (PSM) order,
`PRE prefix SUF suffix MID`, and writes the middle until it emits an end token. Families:

- qwen: Qwen2.5-Coder `<|fim_prefix|>` `<|fim_suffix|>` `<|fim_middle|>`; repository format
  `<|repo_name|>name` then per file `<|file_sep|>path` + text, the current file last (its FIM
  prompt right after its path line).
- starcoder: StarCoder / StarCoder2 `<fim_prefix>` `<fim_suffix>` `<fim_middle>`, StarCoder2's
  repository format `<repo_name>` `<file_sep>`.
- deepseek: DeepSeek-Coder `<｜fim▁begin｜>` `<｜fim▁hole｜>` `<｜fim▁end｜>`; other files as
  text under a `# path` line (its repository-level training format).
- codellama: CodeLlama ` <PRE>` ` <SUF>` ` <MID>`, end ` <EOT>`.

Models without FIM tokens (SmolLM2) keep the prefix-only path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

FIM_MODES = ("auto", "on", "off", "qwen", "starcoder", "deepseek", "codellama")


@dataclass(frozen=True)
class FimTemplate:
    family: str
    prefix: str  # token texts
    suffix: str
    middle: str
    stops: tuple[str, ...]  # tokens that end the middle (besides the tokenizer's EOS)
    repo_name: str | None = None  # repository-level format tokens, where the family has them
    file_sep: str | None = None

    def head_parts(self, files: list[tuple[str, str]], path: str | None, repo: str | None
                   ) -> list[tuple[str, bool]]:
        """The pieces before the FIM prompt, (text, is a special token): other files' snippets
        in the family's repository format, then the current file's path. [] when there are
        no snippets (plain FIM)."""
        if not files:
            return []
        if self.file_sep is None:  # a `# path` line per file (DeepSeek-Coder's format)
            parts = [(f"# {p}\n{_ended(text)}", False) for p, text in files]
            return parts + ([(f"# {path}\n", False)] if path else [])
        out: list[tuple[str, bool]] = []
        if self.repo_name and repo:
            out += [(self.repo_name, True), (f"{repo}\n", False)]
        for p, text in files:
            out += [(self.file_sep, True), (f"{p}\n{_ended(text)}", False)]
        return out + [(self.file_sep, True), (f"{path or 'main.py'}\n", False)]

    def head(self, files: list[tuple[str, str]], path: str | None, repo: str | None) -> str:
        return "".join(text for text, _ in self.head_parts(files, path, repo))

    def prompt(self, prefix: str, suffix: str, head: str = "") -> str:
        """The whole prompt as text (for an inference server that parses special tokens)."""
        return f"{head}{self.prefix}{prefix}{self.suffix}{suffix}{self.middle}"


def _ended(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


TEMPLATES: dict[str, FimTemplate] = {
    "qwen": FimTemplate("qwen", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
                        ("<|fim_pad|>", "<|endoftext|>", "<|file_sep|>", "<|repo_name|>",
                         "<|im_end|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
                        "<|repo_name|>", "<|file_sep|>"),
    "starcoder": FimTemplate("starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>",
                             ("<fim_pad>", "<|endoftext|>", "<file_sep>", "<fim_prefix>",
                              "<fim_suffix>", "<fim_middle>"), "<repo_name>", "<file_sep>"),
    "deepseek": FimTemplate("deepseek", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>",
                            ("<｜end▁of▁sentence｜>", "<|EOT|>", "<｜fim▁begin｜>")),
    "codellama": FimTemplate("codellama", "▁<PRE>", "▁<SUF>", "▁<MID>", ("▁<EOT>",)),
}

# every token the templates name (what a tokenizer must map to ids for the repository format)
SPECIAL_TOKENS = frozenset(t for tpl in TEMPLATES.values() for t in (
    tpl.prefix, tpl.suffix, tpl.middle, *tpl.stops, tpl.repo_name or "", tpl.file_sep or "",
    "<reponame>") if t)


def detect(vocab: dict[str, int] | set[str]) -> FimTemplate | None:
    """The template whose three FIM tokens the tokenizer's vocabulary has, or None. StarCoder 1
    names its repository token `<reponame>`; StarCoder 2 `<repo_name>`."""
    for template in TEMPLATES.values():
        if all(t in vocab for t in (template.prefix, template.suffix, template.middle)):
            if template.family == "starcoder":
                repo = "<repo_name>" if "<repo_name>" in vocab else (
                    "<reponame>" if "<reponame>" in vocab else None)
                sep = "<file_sep>" if "<file_sep>" in vocab else None
                return FimTemplate(template.family, template.prefix, template.suffix,
                                   template.middle, template.stops, repo if sep else None, sep)
            return template
    return None


def for_model_name(name: str) -> FimTemplate | None:
    """A served model's template guessed from its id (the remote backend has no tokenizer):
    Qwen2.5-Coder, StarCoder(2), DeepSeek-Coder, CodeLlama; None for anything else."""
    low = name.lower()
    if "qwen" in low and "coder" in low:
        return TEMPLATES["qwen"]
    if "starcoder" in low:
        return TEMPLATES["starcoder"]
    if "deepseek" in low and "coder" in low:
        return TEMPLATES["deepseek"]
    if "codellama" in low or "code-llama" in low:
        return TEMPLATES["codellama"]
    return None


def resolve(mode: str, vocab: dict[str, int] | set[str] | None = None,
            model_name: str | None = None) -> FimTemplate | None:
    """The template for setting `fim` = `mode`: auto or on (from the vocabulary, else the model
    name; the engine turns auto off for a built-in model measured worse with FIM), off, or a
    family name (an override; with a vocabulary, its tokens must be in it)."""
    if mode not in FIM_MODES:
        raise ValueError(f"setting fim: {mode!r} is not one of {', '.join(FIM_MODES)}")
    if mode == "off":
        return None
    if mode in ("auto", "on"):
        if vocab is not None:
            found = detect(vocab)
            if found is not None or model_name is None:
                return found
        return for_model_name(model_name or "")
    template = TEMPLATES[mode]
    if vocab is not None:
        missing = [t for t in (template.prefix, template.suffix, template.middle)
                   if t not in vocab]
        if missing:
            raise ValueError(f"setting fim: {mode}, but the tokenizer has no {missing[0]}")
    return template


def suffix_window(doc: str, cursor: int, chars: int, align: int = 512) -> int:
    """End of the text after the cursor that goes into the prompt: about `chars` characters,
    rounded up to an aligned block and then to a line end, so that it stays put while the user
    types or moves a few lines (the cached suffix stays valid)."""
    if chars <= 0:
        return cursor
    end = -(-(cursor + chars) // align) * align
    if end >= len(doc):
        return len(doc)
    newline = doc.find("\n", end)
    return len(doc) if newline < 0 else newline + 1


def file_names(path: str | None, workspace: str | None) -> tuple[str | None, str | None]:
    """(the file's path for the repository format, the repository's name): relative to the
    workspace when inside it, else the base name; the workspace folder's name. The local engine
    and the remote backend name files alike."""
    repo = os.path.basename(os.path.normpath(workspace)) if workspace else None
    if not path:
        return None, repo
    rel = os.path.basename(path)
    if workspace:
        try:
            candidate = os.path.relpath(path, workspace)
        except ValueError:  # another drive (Windows)
            return rel, repo
        rel = rel if candidate.startswith("..") else candidate.replace(os.sep, "/")
    return rel, repo
