"""The paper's evaluation (docs/evaluation.md): SSIM and PSNR of the input, classical baselines and
trained runs on the same 128 x 128 sample tiles, and the paper's tables.

* :func:`evaluate` (:mod:`.protocol`) is a progress generator returning an :class:`Evaluation`;
* :func:`format_table` / :func:`markdown_table` (:mod:`.tables`) print Tables 1-4 from it;
* :meth:`Evaluation.to_json` is the JSON of ``temdeblur evaluate --json``.
"""

from .protocol import HELD_OUT, evaluate
from .results import EVALUATION_FORMAT, INPUT, Evaluation, Example, Fold, MethodScores
from .tables import format_table, markdown_table

__all__ = [
    "EVALUATION_FORMAT",
    "HELD_OUT",
    "INPUT",
    "Evaluation",
    "Example",
    "Fold",
    "MethodScores",
    "evaluate",
    "format_table",
    "markdown_table",
]
