"""The paper's tables from an :class:`Evaluation`, as terminal text or markdown.

* Tables 1/2: mean +- std SSIM and PSNR per method over the test tiles;
* Table 3: the same per sample (one column pair each) next to the pooled "all" column, when the data
  hold several samples (e.g. a kidney run, a grid run and a both run on a root holding both);
* with ``--uncertainty``, the runs' trust intervals (coverage, width, width-error correlation);
* Table 4: cross-validation, one row per run and held-out session, then mean +- std over the folds.
"""

from __future__ import annotations

import numpy as np

from ._results import INPUT, Evaluation, MethodScores

_Table = tuple[str, list[str], list[list[str]]]  # (title, header, rows)


def _pm(values: np.ndarray, digits: int) -> str:
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def _cells(scores: MethodScores) -> list[str]:
    return [_pm(scores.ssim, 4), _pm(scores.psnr, 2)]


def _tables(evaluation: Evaluation) -> list[_Table]:
    samples = list(evaluation.samples)
    columns = samples + ["all"] if len(samples) > 1 else samples
    header = ["method"] + [f"{c} {m}" for c in columns for m in ("SSIM", "PSNR (dB)")]
    rows = []
    for key in evaluation.methods:
        row = [key]
        for column in columns:
            methods = evaluation.methods if column == "all" else evaluation.samples[column]["methods"]
            row += _cells(methods[key]) if key in methods else ["-", "-"]
        rows.append(row)
    counts = ", ".join(f"{s} {evaluation.samples[s]['tiles']}" for s in samples)
    title = (
        f"{evaluation.split} of {evaluation.dataset}: {evaluation.tiles} tiles of "
        f"{evaluation.tile_size} x {evaluation.tile_size} px ({counts}); mean ± std over tiles"
    )
    tables = [(title, header, rows)]
    trusted = {key: m.trust for key, m in evaluation.methods.items() if m.trust is not None}
    if trusted:
        header = ["run", "coverage", "nominal", "interval width (mean)", "width-error Spearman", "tiles"]
        rows = []
        for key, trust in trusted.items():
            t = trust.summary()
            rows.append(
                [
                    key,
                    f"{t['coverage']:.4f}",
                    f"{t['nominal_coverage']:.2f}",
                    f"{t['interval_width_mean']:.4f}",
                    f"{t['uncertainty_error_spearman']:.3f}",
                    str(len(trust.width)),
                ]
            )
        caption = (
            "Trust intervals: share of GT pixels inside them (pooled over tiles), their mean width in the "
            "[0, 1] GT window, and the Spearman correlation of mean width and mean absolute error over tiles"
        )
        tables.append((caption, header, rows))
    if evaluation.folds:
        header = [
            "run",
            "sample",
            "held-out session",
            "tiles",
            "input SSIM",
            "run SSIM",
            "input PSNR (dB)",
            "run PSNR (dB)",
        ]
        rows, means = [], []
        for fold in evaluation.folds:
            run, base = fold.methods[fold.run], fold.methods[INPUT]
            means.append([base.ssim.mean(), run.ssim.mean(), base.psnr.mean(), run.psnr.mean()])
            rows.append(
                [
                    fold.run,
                    fold.sample,
                    str(fold.session),
                    str(fold.tiles),
                    f"{means[-1][0]:.4f}",
                    f"{means[-1][1]:.4f}",
                    f"{means[-1][2]:.2f}",
                    f"{means[-1][3]:.2f}",
                ]
            )
        means = np.array(means)
        rows.append(
            [
                "mean ± std over folds",
                "",
                "",
                str(sum(f.tiles for f in evaluation.folds)),
                *(_pm(means[:, i], 4 if i < 2 else 2) for i in range(4)),
            ]
        )
        tables.append(
            ("Cross-validation: each run on the sessions it held out (fold = mean over its tiles)", header, rows)
        )
    return tables


def format_table(evaluation: Evaluation) -> str:
    """The tables as aligned plain text for a terminal."""
    blocks = []
    for title, header, rows in _tables(evaluation):
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        blocks.append("\n".join([title, *lines]))
    return "\n\n".join(blocks)


def markdown_table(evaluation: Evaluation) -> str:
    """The tables as markdown (a caption line, then a pipe table each), for reports and docs."""
    blocks = []
    for title, header, rows in _tables(evaluation):
        lines = [f"| {' | '.join(header)} |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += [f"| {' | '.join(row)} |" for row in rows]
        blocks.append("\n".join([f"*{title}*", "", *lines]))
    return "\n\n".join(blocks)
