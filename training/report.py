"""The evaluation as Markdown tables: one grid per quantity, alpha down, beta across."""

from __future__ import annotations

from pathlib import Path


def _grid(cells: list[dict], value, fmt: str = "{:.3f}") -> list[str]:
    alphas = sorted({c["alpha"] for c in cells})
    betas = sorted({c["beta"] for c in cells})
    at = {(c["alpha"], c["beta"]): c for c in cells}
    lines = ["| alpha \\ beta | " + " | ".join(f"{b:g}" for b in betas) + " |",
             "| --- |" + " --- |" * len(betas)]
    for a in alphas:
        row = []
        for b in betas:
            cell = at[(a, b)]
            v = value(cell)
            text = "n/a" if v is None else fmt.format(v)
            row.append(text + ("*" if cell["unseen"] else ""))
        lines.append(f"| {a:g} | " + " | ".join(row) + " |")
    return lines


def _num(value) -> str:
    return "undefined (the rate never varies)" if value is None else f"{value:.3f}"


def _share(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _quality_rows(summary: dict, row) -> None:
    """Question specificity, list quality, the leak check and within-row steering."""
    for key, who in (("questions", "policy"), ("forced_questions", "forced #CLARIFY")):
        q = summary.get(key)
        if q:
            row(f"{who}: clarifying questions on ambiguous items naming at least two readings",
                f"{_share(q['naming_two_readings'])} of {q['questions']}")
            row(f"{who}: ... that are questions (end with '?')", _share(q["are_questions"]))
            if "one_sentence" in q:
                row(f"{who}: ... one sentence ending with '?'", _share(q["one_sentence"]))
                row(f"{who}: ... over 30 words", _share(q["over_30_words"]))
            row(f"{who}: ... mean words", "n/a" if q["mean_words"] is None else f"{q['mean_words']:.1f}")
    for key, who in (("lists", "policy"), ("forced_lists", "forced #MULTI_ANS")):
        q = summary.get(key)
        if q:
            row(f"{who}: F1 of the line the user picks by label / F1 of the best line",
                f"{_share(q['picked_over_best'])} ({_share(q['picked_f1'])} / {_share(q['best_line_f1'])}, "
                f"{q['lists']} lists)")
            if q.get("ambiguous_lists"):
                row(f"{who}, ambiguous items: lines per list; lines whose label names a reading",
                    f"{q['mean_lines']:.2f}; {_share(q['lines_naming_a_reading'])}")
                row(f"{who}, ambiguous items: lists with two labels alike; readings a label names",
                    f"{_share(q['lists_with_duplicate_labels'])}; {_share(q['readings_covered'])}")
    versus = summary.get("list_against_question")
    if versus and versus["pairs"]:
        row("forced lists against forced questions, where both named the user's reading: picked "
            "line F1 / follow-up F1", f"{_share(versus['ratio'])} ({_share(versus['picked_line_f1'])} / "
            f"{_share(versus['follow_up_f1'])}, {versus['pairs']} pairs)")
    leak = summary.get("leak_check")
    if leak:
        for name, value in leak["string_rules"].items():
            row(f"leak check: AUC of `{name}` for 'ambiguous' (0.5 = no leak)", _share(value))
        for name, value in leak["topic_rules"].items():
            row(f"topic signal: AUC of `{name}` (legitimate; a retriever gives it)", _share(value))
    steer = summary.get("steering")
    if steer:
        for kind, cost, rate in (("rows", "alpha", "multi-answer"), ("columns", "beta", "clarify")):
            moving = "beta" if cost == "alpha" else "alpha"
            cells = [f"{cost}={r[cost]:g}: {_num(r['spearman']) if r['bound_varies'] else 'bound flat'}"
                     f"{'' if r['monotone'] else ' (rises)'}" for r in steer[kind]]
            row(f"Spearman({moving}, {rate} rate) within each {cost} {kind[:-1]}", "; ".join(cells))


def _target_rows(summary: dict, row) -> None:
    """The decision against the best fixed strategy and the readings rule, its rates against
    the costs, and its estimates against what was realised (decisions.targets)."""
    t = summary.get("targets")
    if not t:
        return
    n = t["cells"]
    if "never_behind_best_fixed" in t:
        row("cells not behind the best fixed strategy by more than 1 paired SE",
            f"{t['never_behind_best_fixed']} / {n}")
        row("cells ahead of the best fixed strategy by more than 2 paired SE",
            f"{t['ahead_of_best_fixed_by_2se']} / {n}")
        row("cells at or above the readings rule's reward", f"{t['at_least_readings_rule']} / {n}")
    for name, counts in t.get("against", {}).items():
        row(f"cells ahead of the decision by {name} (same replies): ahead / by more than 2 paired SE / "
            "behind by more than 2 paired SE",
            f"{counts['ahead']} / {counts['ahead_by_2se']} / {counts['behind_by_2se']} of {n}")
    row("largest rise of the clarify rate from one alpha to the next (0 or less: never rises)",
        f"{t['largest_clarify_rise_with_alpha']:+.3f}")
    row("largest rise of the multi-answer rate from one beta to the next",
        f"{t['largest_multi_rise_with_beta']:+.3f}")
    if "estimates_checked" in t:
        row("(action, cell) pairs whose mean predicted F1 is within 0.05 of the realised",
            f"{t['estimates_within_tolerance']} / {t['estimates_checked']} (largest error "
            f"{t['largest_estimate_error']:.3f})")


def _decision_sections(cells: list[dict]) -> list[tuple]:
    """Grids of the evaluated decision against the best fixed strategy, the other decision
    and its own estimates."""
    sections = []
    if "best_fixed" in cells[0]:
        sections += [
            ("Policy minus the best fixed strategy of the cell: mean reward difference",
             lambda c: c["best_fixed"]["diff"], "{:+.3f}"),
            ("... its paired standard error", lambda c: c["best_fixed"]["se"], "{:.3f}"),
            ("Policy: clarify rate on ambiguous items", lambda c: c["policy"].get("ambiguous_clarify"), "{:.2f}"),
            ("Policy: clarify rate on single-reading items", lambda c: c["policy"].get("single_clarify"), "{:.2f}"),
        ]
    for name in cells[0].get("decisions", {}):
        sections += [
            (f"Decision by {name}: mean reward (same replies)",
             lambda c, n=name: c["decisions"][n]["reward"], "{:.3f}"),
            (f"Policy minus decision by {name}: mean reward difference",
             lambda c, n=name: c["decisions"][n]["diff"], "{:+.3f}"),
            ("... its paired standard error", lambda c, n=name: c["decisions"][n]["se"], "{:.3f}"),
            (f"Decision by {name}: clarify rate", lambda c, n=name: c["decisions"][n]["clarify_rate"], "{:.2f}"),
            (f"Decision by {name}: multi-answer rate", lambda c, n=name: c["decisions"][n]["multi_rate"], "{:.2f}"),
        ]
    for action in cells[0].get("estimates", {}):
        sections += [
            (f"{action}: mean predicted F1 - realised F1",
             lambda c, a=action: c["estimates"][a]["predicted_f1"] - c["estimates"][a]["realised_f1"], "{:+.3f}"),
            (f"{action}: mean predicted words - realised words",
             lambda c, a=action: c["estimates"][a]["predicted_words"] - c["estimates"][a]["realised_words"],
             "{:+.1f}"),
        ]
    return sections


def write_markdown(summary: dict, path: Path) -> None:
    cells = summary["cells"]
    lines = [f"# Evaluation: {summary['dataset']} {summary.get('split', '')} ({summary['setting']}), "
             f"{summary['items']} items",
             "", f"Policy: `{summary['adapter'] or 'base model'}`. Slice: `{summary.get('split')}`. "
             f"User: `{summary.get('simulator', 'reference')}`. Cells marked * use an alpha or a "
             "beta never seen in training.", "",
             "| target | value |", "| --- | --- |"]

    def row(label: str, value) -> None:
        lines.append(f"| {label} | {value} |")

    row("decision (what picks the first action)", summary.get("decision", "policy"))
    _target_rows(summary, row)
    row("cells where the policy beats every baseline (by more than 2 SE of the paired difference)",
        f"{summary['cells_beating_all_baselines']} / {len(cells)}")
    row("... of them unseen cells",
        f"{summary['unseen_cells_beating_all_baselines']} / {summary['unseen_cells']}")
    row("cells where the policy's mean reward is above every baseline's (no margin)",
        f"{summary['cells_above_all_baselines']} / {len(cells)}")
    row("Spearman(alpha, clarify rate)", _num(summary["spearman_alpha_clarify"]))
    row("Spearman(beta, multi-answer rate)", _num(summary["spearman_beta_multi"]))
    if "prompted_spearman_alpha_clarify" in summary:
        row("prompted base: Spearman(alpha, clarify rate)", _num(summary["prompted_spearman_alpha_clarify"]))
        row("prompted base: Spearman(beta, multi-answer rate)", _num(summary["prompted_spearman_beta_multi"]))
    if "best_forced" in summary:
        best = summary["best_forced"]
        row("best forced reply per item (reward-maximising with these replies): Spearman(alpha, "
            "clarify rate)", _num(best["spearman_alpha_clarify"]))
        row("best forced reply: Spearman(beta, multi-answer rate)", _num(best["spearman_beta_multi"]))
    _quality_rows(summary, row)
    if "readings_rule" in summary:
        rule = summary["readings_rule"]
        row("readings rule (bound, see below): cells beating every fixed strategy",
            f"{rule['cells_beating_fixed']} / {len(cells)}")
        row("readings rule: Spearman(alpha, clarify rate)", _num(rule["spearman_alpha_clarify"]))
        row("readings rule: Spearman(beta, multi-answer rate)", _num(rule["spearman_beta_multi"]))
        names = list(cells[0]["fixed"])
        rows = rule["f1_by_readings"].values()
        extra = [n for n in ("list_lines", "list_best_line_f1", "list_words") if any(n in r for r in rows)]
        lines += ["", "## Forced actions: mean F1 by number of readings (4 = 4 or more)", ""]
        legend = {"list_lines": "`list_lines`: how many readings a forced multi-answer names, on average.",
                  "list_best_line_f1": "`list_best_line_f1`: its mean F1 had the user taken the line that "
                                       "answers the intent best (the simulator picks by label).",
                  "list_words": "`list_words`: how many words it has, on average (what beta prices)."}
        if extra:
            lines += [legend[n] for n in extra] + [""]
        lines += ["| readings | items | " + " | ".join(names + extra) + " |",
                  "| --- | --- |" + " --- |" * len(names + extra)]
        lines += [f"| {k} | {row['items']} | " + " | ".join(f"{row.get(n, float('nan')):.3f}" for n in names)
                  + "".join(f" | {row.get(n, float('nan')):.2f}" for n in extra) + " |"
                  for k, row in rule["f1_by_readings"].items()]
    sections = [("Policy: mean reward", lambda c: c["policy"]["reward"], "{:.3f}")]
    sections += _decision_sections(cells)
    if "best_forced" in cells[0]:
        sections += [
            ("Best fixed strategy: mean reward", lambda c: max(c["fixed"].values()), "{:.3f}"),
            ("Best forced reply per item (bound): mean reward", lambda c: c["best_forced"], "{:.3f}"),
            ("Policy reward as a fraction of the bound's", lambda c: c["best_forced_fraction"], "{:.2f}"),
            ("Bound: clarify rate", lambda c: c["best_forced_actions"]["clarify_rate"], "{:.2f}"),
            ("Bound: multi-answer rate", lambda c: c["best_forced_actions"]["multi_rate"], "{:.2f}"),
            ("Readings rule (the best forced action for each number of readings, chosen on "
             "these episodes: what knowing how ambiguous each query is could reach with these "
             "replies): mean reward", lambda c: c["readings_rule"]["reward"], "{:.3f}"),
            ("Readings rule: multi-answer rate", lambda c: c["readings_rule"]["multi_rate"], "{:.2f}"),
        ]
    if "prompted" in cells[0]:
        sections.append(("Prompted base model: mean reward", lambda c: c["prompted"]["reward"], "{:.3f}"))
    sections += [
        ("Policy: F1", lambda c: c["policy"]["f1"], "{:.3f}"),
        ("Policy: clarify rate", lambda c: c["policy"]["clarify_rate"], "{:.2f}"),
        ("Policy: multi-answer rate", lambda c: c["policy"]["multi_rate"], "{:.2f}"),
        ("Policy: clarify-or-list rate on ambiguous items",
         lambda c: c["policy"].get("ambiguous_clarify_or_list"), "{:.2f}"),
        ("Policy: clarify-or-list rate on single-reading items",
         lambda c: c["policy"].get("single_clarify_or_list"), "{:.2f}"),
        ("Policy: mean words of the final answer", lambda c: c["policy"]["words"], "{:.1f}"),
        ("Policy: mean questions", lambda c: c["policy"]["questions"], "{:.2f}"),
        ("Policy beats every baseline (1 = yes)", lambda c: float(c["beats_all_baselines"]), "{:.0f}"),
    ]
    for title, value, fmt in sections:
        lines += ["", f"## {title}", ""] + _grid(cells, value, fmt)
    if "fixed" in cells[0]:
        for name in cells[0]["fixed"]:
            lines += ["", f"## {name}: mean reward", ""] + _grid(cells, lambda c, n=name: c["fixed"][n])
    path.write_text("\n".join(lines) + "\n")
