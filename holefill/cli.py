"""holefill command line: serve | complete | context | resolve | merge-driver | bench | model."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from pathlib import Path

from holefill.config import Settings

CLI_INDEX_BUDGET_S = 10.0  # `complete` indexes the workspace for API context at most this long
BENCH_SUITES = ("engine", "latency", "nextline", "edits", "merge", "holes", "api", "decode", "fim",
                "decode_drafts", "decode_exit")


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="a built-in model (qwen2.5-coder-0.5b, smollm2-135m; "
                        "'embedded': the default one), a .gguf file, a local HF directory or a "
                        "hub id in the local HF cache")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--dtype", help="auto | float32 | bfloat16 | int8 | int4")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--backend", choices=("local", "openai"),
                        help="local (in-process, default) | openai (an OpenAI-compatible server)")
    parser.add_argument("--endpoint", help="openai backend: http(s)://HOST:PORT (vLLM, llama.cpp)")
    parser.add_argument("--api-key-env", help="openai backend: env variable holding the API key")


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    flags = {k: getattr(args, k, None) for k in ("model", "device", "dtype", "threads",
                                                 "max_new_tokens", "backend", "endpoint",
                                                 "api_key_env", "error_rounds", "drafts")}
    if getattr(args, "no_token_healing", False):
        flags["token_healing"] = False
    if getattr(args, "typed_holes", False):
        flags["typed_holes"] = True
    if getattr(args, "no_check", False):
        flags["check_suggestions"] = False
    return settings.updated({k: v for k, v in flags.items() if v is not None})


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def parse_location(spec: str) -> tuple[Path, int, int]:
    """FILE:LINE:COL with 1-based line and column (in characters)."""
    try:
        path, line, col = spec.rsplit(":", 2)
        line_no, col_no = int(line), int(col)
    except ValueError:
        raise SystemExit(f"holefill: expected FILE:LINE:COL, got {spec!r}") from None
    if line_no < 1 or col_no < 1:
        raise SystemExit("holefill: LINE and COL are 1-based")
    return Path(path), line_no, col_no


def read_source(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SystemExit(f"holefill: cannot read {path}: {exc.strerror}") from None
    return data.decode("utf-8", errors="replace")


def offset_of(text: str, line: int, col: int) -> int:
    """Character offset of 1-based (line, col); a column past the line's end means its end."""
    lines = text.split("\n")
    if line > len(lines):
        raise SystemExit(f"holefill: line {line} is past the end of the file ({len(lines)} lines)")
    before = sum(len(s) + 1 for s in lines[: line - 1])
    return before + min(col - 1, len(lines[line - 1]))


def cmd_complete(args: argparse.Namespace) -> int:
    from holefill.completion.engine import CompletionRequest
    from holefill.completion.model import ModelError
    from holefill.lsp_server.engine_host import default_engine_factory

    path, line, col = parse_location(args.location)
    text = read_source(path)
    offset = offset_of(text, line, col)
    try:
        engine = default_engine_factory(_settings(args))  # local or openai backend
    except ModelError as exc:
        print(f"holefill: {exc}", file=sys.stderr)
        return 2
    workspace = args.workspace or str(path.resolve().parent)
    from holefill.context.api import api_site

    if hasattr(engine, "api_index") and api_site(text, offset) is not None and (
            engine.settings.api_context or engine.settings.constrain_api_names):
        from holefill.context.index import ApiIndex

        # LANCE: the workspace's APIs for `recv.` (bounded: a one-shot command); elsewhere
        # the index is never read, so it is not built
        engine.api_index = ApiIndex.build(workspace, time_budget_s=CLI_INDEX_BUDGET_S)
    try:
        result = engine.complete(CompletionRequest(text=text, offset=offset,
                                                   path=str(path.resolve()), workspace=workspace,
                                                   max_new_tokens=args.max_new_tokens))
    except RuntimeError as exc:
        if not getattr(exc, "unavailable", False):  # remote.EndpointError: endpoint down
            raise
        print(f"holefill: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({
            "items": [{"text": d.text, "score": round(d.score, 4)} for d in result.items],
            "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()},
            "model": result.model,
            "rejected": result.rejected,
        }, indent=2))
    elif not result.items:
        why = f": rejected by the checker ({result.rejected[0]})" if result.rejected else ""
        print(f"(no suggestion{why})", file=sys.stderr)
    else:
        for i, draft in enumerate(result.items):
            if len(result.items) > 1:
                print(f"--- draft {i + 1} (score {draft.score:.3f})")
            print(draft.text)
    return 0


def cmd_context(args: argparse.Namespace) -> int:
    from holefill.completion import fim
    from holefill.completion.postprocess import analyze_cursor

    path, line, col = parse_location(args.location)
    text = read_source(path)
    offset = offset_of(text, line, col)
    ctx = analyze_cursor(text, offset)
    settings = _settings(args)
    # The prompt as text (no model is loaded here): a FIM model's layout when the model's name
    # says its family (built-in models, served ids), else the file window before the cursor.
    from holefill.completion.model import builtin_model
    from holefill.completion.remote import build_prompt

    name = settings.model if settings.model not in ("", "embedded") else _default_model()
    template = fim.resolve(settings.fim, model_name=name)
    spec = builtin_model(name)
    if settings.fim == "auto" and spec is not None and not spec.fim_by_default:
        template = None  # as the engine: this model measures better without FIM
    workspace = args.workspace or str(path.resolve().parent)
    prompt, _ = build_prompt(text, offset, settings, str(path.resolve()), workspace,
                             template=template)
    from holefill.context.report import context_report

    hole = context_report(text, offset, str(path.resolve()), workspace)
    info = {"path": str(path), "line": line, "column": col, "offset": offset,
            "mode": ctx.mode, "indent": ctx.indent, "indent_unit": ctx.indent_unit,
            "line_prefix": ctx.line_prefix, "line_suffix": ctx.line_suffix,
            "expected_type": hole["expectedType"], "relevant_types": hole["relevantTypes"],
            "relevant_headers": hole["relevantHeaders"], "context_block": hole["contextBlock"],
            "fim": template.family if template else "off", "prompt": prompt}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            if key not in ("prompt", "context_block", "relevant_types", "relevant_headers"):
                print(f"{key}: {value!r}")
        if hole["contextBlock"]:
            print("--- typed-hole context (in the prompt with typedHoles on) ---")
            print(hole["contextBlock"])
        print("--- prompt ---")
        print(prompt)
    return 0


def _default_model() -> str:
    from holefill.config import DEFAULT_MODEL

    return DEFAULT_MODEL


def cmd_api(args: argparse.Namespace) -> int:
    """Conversational API search over the workspace's index (LANCE)."""
    from holefill.context.api import ApiSearch, Reranker, hit_json
    from holefill.context.index import ApiIndex

    root = Path(args.workspace or ".")
    if not root.is_dir():
        raise SystemExit(f"holefill: not a directory: {root}")
    if not args.query.strip():
        raise SystemExit("holefill: the query is empty")
    if args.rerank and not Reranker.available():
        raise SystemExit("holefill: --rerank needs the embedding model: pip install holefill[rerank]")
    index = ApiIndex.build(root)
    hits = ApiSearch(index, Reranker() if args.rerank else None).search(args.query, k=args.top)
    if args.json:
        print(json.dumps({"query": args.query, "items": [hit_json(h) for h in hits]}, indent=2))
    elif not hits:
        print("(no matching API)", file=sys.stderr)
    for hit in [] if args.json else hits:
        rel = os.path.relpath(hit.symbol.path, root.resolve())
        doc = f"  # {hit.symbol.doc}" if hit.symbol.doc else ""
        print(f"{hit.symbol.qualname}  {hit.symbol.signature}  ({rel}:{hit.symbol.line}){doc}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from holefill.lsp_server.server import run_server

    run_server(_settings(args), tcp=args.tcp)
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    from holefill.completion import model as model_mod
    from holefill.completion.model import ModelError, cache_dir

    settings = _settings(args)
    if args.name:
        settings = settings.updated({"model": args.name})
    try:
        if args.action == "fetch":
            spec = model_mod.builtin_model(settings.model)
            if spec is None:
                print(f"holefill: {settings.model!r} is not a built-in model "
                      f"({', '.join(model_mod.BUILTIN_MODELS)}); local files and directories "
                      "need no fetch", file=sys.stderr)
                return 2
            path = model_mod.prepare_builtin(spec)
            print(f"{spec.name} ready: {path}\n  weights: {spec.title}, {spec.license}\n"
                  f"  from {spec.origin}\n  sha256 {spec.sha256} (verified)")
            return 0
        from holefill.lsp_server.engine_host import default_engine_factory

        engine = default_engine_factory(settings)  # local or openai backend
    except ModelError as exc:
        print(f"holefill: {exc}", file=sys.stderr)
        return 2
    info = engine.info
    data = {
        "model": info.name, "source": info.source, "path": info.path,
        "architecture": info.architecture, "decoder": info.decoder, "device": info.device,
        "dtype": info.dtype, "load_s": round(info.load_s, 2), "cache_dir": str(cache_dir()),
        "cache_mode": engine.cache_mode,
        "pie": f"unavailable: {engine.pie_unsupported}" if engine.pie_unsupported else "available",
        "fim": info.extra.get("fim", "off"),
        "backend": settings.backend,
    }
    for key in ("license", "origin", "sha256"):
        if key in info.extra:
            data[key] = info.extra[key]
    if hasattr(engine, "capabilities"):  # per feature: available, or why not on this backend
        data["capabilities"] = engine.capabilities()
    data["built_in_models"] = {
        name: {"default": m["default"], "gguf_mb": m["gguf_mb"], "converted_mb": m["converted_mb"],
               "license": m["license"]}
        for name, m in model_mod.describe_cache()["models"].items()}
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        width = max(map(len, data))
        for key, value in data.items():
            if isinstance(value, dict):
                print(f"{key}:")
                inner = max(map(len, value), default=0)
                for name, what in value.items():
                    print(f"  {name:<{inner}}  {what}")
            else:
                print(f"{key:<{width}}  {value}")
    return 0


def cmd_bench(args: argparse.Namespace, rest: list[str]) -> int:
    module = importlib.import_module(f"holefill.benchmarks.{args.suite}")
    parser = argparse.ArgumentParser(prog=f"holefill bench {args.suite}")
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="write results as JSON")
    parser.add_argument("--plot", metavar="OUT.png", help="write a plot (suites that have one)")
    _add_model_flags(parser)
    module.add_arguments(parser)
    bench_args = parser.parse_args(rest)
    bench_args.settings = _settings(bench_args)
    results = module.run(bench_args)
    text = json.dumps(results, indent=2)
    print(text)
    if bench_args.json_out:
        Path(bench_args.json_out).write_text(text + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="holefill", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("HOLEFILL_LOG_LEVEL", "warning"))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("complete", help="print a completion for FILE:LINE:COL (1-based)")
    p.add_argument("location", metavar="FILE:LINE:COL")
    p.add_argument("--workspace", help="workspace root (default: the file's directory)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--no-token-healing", action="store_true")
    p.add_argument("--typed-holes", action="store_true",
                   help="put the typed-hole context block before the file text")
    p.add_argument("--no-check", action="store_true", help="show suggestions the checker rejects")
    p.add_argument("--drafts", type=_positive, metavar="K",
                   help="alternative drafts by superposed decoding (1 = greedy only)")
    p.add_argument("--error-rounds", type=int,
                   help="regenerate at most N times with the checker's errors (default 2)")
    _add_model_flags(p)
    p.set_defaults(func=cmd_complete)

    p = sub.add_parser("context", help="print the hole context and prompt for FILE:LINE:COL")
    p.add_argument("location", metavar="FILE:LINE:COL")
    p.add_argument("--workspace")
    p.add_argument("--json", action="store_true")
    _add_model_flags(p)
    p.set_defaults(func=cmd_context)

    p = sub.add_parser("api", help="search the workspace's APIs: holefill api \"QUERY\"")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--workspace", help="workspace root (default: the current directory)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--top", type=int, default=10, help="how many results (default 10)")
    p.add_argument("--rerank", action="store_true",
                   help="re-rank with a local embedding model (holefill[rerank])")
    p.set_defaults(func=cmd_api)

    p = sub.add_parser("serve", help="language server on stdio (or --tcp HOST:PORT)")
    p.add_argument("--tcp", metavar="[HOST:]PORT", help="listen on TCP (default host 127.0.0.1)")
    _add_model_flags(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("model", help="model info | fetch [NAME]")
    p.add_argument("action", choices=("info", "fetch"))
    p.add_argument("name", nargs="?", help="a built-in model (qwen2.5-coder-0.5b, smollm2-135m); "
                   "default: the configured one")
    p.add_argument("--json", action="store_true")
    _add_model_flags(p)
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("bench", help=f"run a benchmark suite: {', '.join(BENCH_SUITES)}",
                       add_help=False)
    p.add_argument("suite", choices=BENCH_SUITES)
    p.set_defaults(func=cmd_bench)

    try:
        from holefill.merge.cli import register as register_merge
    except ImportError:
        register_merge = None
    if register_merge is not None:
        register_merge(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.func is cmd_bench:
        return cmd_bench(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
