"""The paper's evaluation (docs/evaluation.md): the input, classical baselines and trained runs scored
on the same sample tiles, the paper's tables, and figures."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "_baselines": ["BASELINES", "baseline", "estimate_motion_psf", "motion_psf"],
        "_figures": ["comparison_figure", "panel_figure", "synthetic_figure", "synthetic_images"],
        "_images": ["EvalImage", "prepare", "sample_windows", "score"],
        "_options": ["EvaluateOptions"],
        "_protocol": ["HELD_OUT", "evaluate"],
        "_results": ["EVALUATION_FORMAT", "INPUT", "Evaluation", "Example", "Fold", "MethodScores", "TileTrust"],
        "_tables": ["format_table", "markdown_table"],
        "_written": ["TABLES_MARK", "written_by_evaluate"],
    },
)
