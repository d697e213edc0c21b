"""`holefill bench decode`: the decoding techniques of RESEARCH §2-3 on held-out next-line tasks.

One command for both parts, each also runnable alone:
- `drafts` (`bench decode_drafts`): superposed k drafts vs greedy, sequential and batched sampling;
- `exit` (`bench decode_exit`): self-speculative decoding vs greedy, and the stop controller.

The JSON holds each part's full report under its name and the issue's headline keys at the top:
`spd_time_ratio_k3_vs_greedy`, `best_of_3_exact_match`, `greedy_exact_match`, `selfspec_speedup`,
`selfspec_identical`, `lookup_speedup`, `lookup_identical`, `lookup_acceptance`,
`selfspec_lookup_speedup`, `selfspec_lookup_identical`, `stop_precision`, `stop_recall`,
`tokens_saved`.
"""

from __future__ import annotations

import argparse

from holefill.benchmarks import decode_drafts, decode_exit

PARTS = {"drafts": decode_drafts, "exit": decode_exit}
HEADLINE = ("spd_time_ratio_k3_vs_greedy", "best_of_3_exact_match", "greedy_exact_match",
            "selfspec_speedup", "selfspec_identical", "lookup_speedup", "lookup_identical",
            "lookup_acceptance", "selfspec_lookup_speedup", "selfspec_lookup_identical",
            "stop_precision", "stop_recall", "tokens_saved")


class _FirstDefinitionWins:
    """Both parts define the same task options (-n, --seed, --packages): keep the first."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser

    def add_argument(self, *flags: str, **kwargs):
        if any(flag in self.parser._option_string_actions for flag in flags):
            return None
        return self.parser.add_argument(*flags, **kwargs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parts", default="drafts,exit", help="drafts, exit or both")
    for module in PARTS.values():
        module.add_arguments(_FirstDefinitionWins(parser))


def run(args: argparse.Namespace) -> dict:
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"holefill bench decode: unknown parts {unknown}; "
                         f"choose from {', '.join(PARTS)}")
    report: dict = {"suite": "decode"}
    for name in parts:
        part = PARTS[name].run(args)
        report[name] = part
        for key in HEADLINE:
            if key in part:
                report[key] = part[key]
    if getattr(args, "plot", None) and "drafts" in report:
        plot(report["drafts"].get("methods", {}), args.plot)
    return report


def plot(methods: dict, out: str) -> None:
    """Time per request relative to greedy and best-of-k exact match against k: superposed
    decoding vs k sequential sampled passes."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install matplotlib") from None
    fig, (time_ax, em_ax) = plt.subplots(1, 2, figsize=(9, 3.6))
    for prefix, label, marker in (("spd_k", "superposed", "o"), ("sampling_x", "sampling", "s")):
        ks = sorted(int(name[len(prefix):]) for name in methods
                    if name.startswith(prefix) and name[len(prefix):].isdigit())
        rows = [methods[f"{prefix}{k}"] for k in ks]
        if prefix == "spd_k" and "greedy" in methods:  # k = 1 superposed is greedy
            ks, rows = [1] + ks, [methods["greedy"]] + rows
        time_ax.plot(ks, [r.get("time_ratio_vs_greedy", 1.0) for r in rows], marker=marker,
                     label=label)
        em_ax.plot(ks, [r.get("em_best") for r in rows], marker=marker, label=label)
    time_ax.set_xlabel("drafts k")
    time_ax.set_ylabel("time / greedy")
    em_ax.set_xlabel("drafts k")
    em_ax.set_ylabel("best-of-k exact match")
    time_ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
