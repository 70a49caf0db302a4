"""PNG plots of an evaluation: how the actions move with the costs, and reward against baselines."""

from __future__ import annotations

from pathlib import Path


def _rho(value) -> str:
    return "undefined" if value is None else f"{value:.2f}"


def write_plots(summary: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt

    cells = summary["cells"]
    alphas = sorted({c["alpha"] for c in cells})
    betas = sorted({c["beta"] for c in cells})
    at = {(c["alpha"], c["beta"]): c for c in cells}
    written = []

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for b in betas:
        left.plot(alphas, [at[(a, b)]["policy"]["clarify_rate"] for a in alphas], marker="o", label=f"beta={b:g}")
    left.set(xscale="log", xlabel="alpha (cost per question)", ylabel="clarify rate",
             title=f"Clarify rate vs alpha (Spearman {_rho(summary['spearman_alpha_clarify'])})", ylim=(-0.02, 1.02))
    # the grid's own values as ticks: a log axis would otherwise label its minor ticks over them
    left.set_xticks(alphas, [f"{a:g}" for a in alphas])
    left.minorticks_off()
    left.legend(fontsize=8)
    for a in alphas:
        right.plot(betas, [at[(a, b)]["policy"]["multi_rate"] for b in betas], marker="o", label=f"alpha={a:g}")
    right.set(xscale="log", xlabel="beta (cost per word)", ylabel="multi-answer rate",
              title=f"Multi-answer rate vs beta (Spearman {_rho(summary['spearman_beta_multi'])})", ylim=(-0.02, 1.02))
    right.set_xticks(betas, [f"{b:g}" for b in betas])
    right.minorticks_off()
    right.legend(fontsize=8)
    fig.suptitle(f"{summary['dataset']} {summary.get('split', '')}, {summary.get('simulator', 'reference')} user",
                 fontsize=9)
    fig.tight_layout()
    written.append(out / "action_rates.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    if "ambiguous_clarify_or_list" in cells[0]["policy"]:
        written.append(_awareness_plot(summary, alphas, betas, at, out, plt))

    systems = {"policy": lambda c: c["policy"]["reward"]}
    if "prompted" in cells[0]:
        systems["prompted base"] = lambda c: c["prompted"]["reward"]
    for name in cells[0].get("fixed", {}):
        systems[name] = lambda c, n=name: c["fixed"][n]
    if "best_forced" in cells[0]:
        systems["best forced reply (bound)"] = lambda c: c["best_forced"]
    fig, ax = plt.subplots(figsize=(13, 4.5))
    width = 0.8 / len(systems)
    for k, (name, value) in enumerate(systems.items()):
        xs = [i + k * width for i in range(len(cells))]
        ax.bar(xs, [value(c) for c in cells], width, label=name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cells))])
    ax.set_xticklabels([f"{c['alpha']:g}/{c['beta']:g}" + ("*" if c["unseen"] else "") for c in cells],
                       rotation=70, fontsize=7)
    ax.set(xlabel="alpha/beta (* unseen in training)", ylabel="mean reward",
           title=f"Reward per cost cell: policy vs baselines ({summary.get('split', '')}, "
                 f"{summary.get('simulator', 'reference')} user)")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    written.append(out / "reward_by_cell.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    if "estimates" in cells[0]:
        written.append(_estimates_plot(summary, cells, out, plt))
    return written


def _estimates_plot(summary, cells, out: Path, plt) -> Path:
    """Each action's mean predicted F1 and words against the realised, one point per cell."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, quantity in zip(axes, ("f1", "words")):
        values = []
        for k, action in enumerate(cells[0]["estimates"]):
            xs = [c["estimates"][action][f"realised_{quantity}"] for c in cells]
            ys = [c["estimates"][action][f"predicted_{quantity}"] for c in cells]
            values += xs + ys
            ax.scatter(xs, ys, s=14, color=f"C{k}", label=action)
        low, high = min(values), max(values)
        pad = (high - low) * 0.1 or 0.05
        ax.plot([low - pad, high + pad], [low - pad, high + pad], color="black", linewidth=0.6)
        if quantity == "f1":
            for shift in (-0.05, 0.05):
                ax.plot([low - pad, high + pad], [low - pad + shift, high + pad + shift], ":", color="grey",
                        linewidth=0.6)
        ax.set(xlabel=f"realised mean {quantity} (forced episodes)", ylabel=f"predicted mean {quantity}",
               title=f"Expected {quantity}: predicted vs realised, per cell")
        ax.legend(fontsize=8)
    fig.suptitle(f"{summary['dataset']} {summary.get('split', '')}: the value head's estimates "
                 "(dotted: within 0.05)", fontsize=9)
    fig.tight_layout()
    path = out / "value_estimates.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _awareness_plot(summary, alphas, betas, at, out: Path, plt) -> Path:
    """Clarify-or-list rate against alpha, ambiguous items (solid) vs single-reading (dashed)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for k, b in enumerate(betas):
        color = f"C{k}"
        for key, style, label in (("ambiguous_clarify_or_list", "-", "ambiguous"),
                                  ("single_clarify_or_list", "--", "single reading")):
            values = [at[(a, b)]["policy"].get(key) for a in alphas]
            ax.plot(alphas, [float("nan") if v is None else v for v in values], style, color=color,
                    marker="o", label=f"beta={b:g}, {label}")
    ax.set(xscale="log", xlabel="alpha (cost per question)", ylabel="clarify-or-list rate", ylim=(-0.02, 1.02),
           title=f"Asks or lists: ambiguous vs single-reading items ({summary.get('split', '')})")
    ax.set_xticks(alphas, [f"{a:g}" for a in alphas])
    ax.minorticks_off()
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    path = out / "awareness.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
