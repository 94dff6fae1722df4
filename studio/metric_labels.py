"""Plain-language names and explanations for the numbers the app shows (model comparison keys,
the queue's uncertainty), so an expert need not know ``experts.qwk`` or "SD" to read them."""
from __future__ import annotations

from .render import esc

DIMENSIONS = {"goal": "Goal", "task": "Task", "bond": "Bond"}
METRICS = {
    "validation_loss": ("Validation loss", "How surprised the model is by the held-out answers "
                        "(answer tokens only); lower is better."),
    "experts.exact": ("Exact agreement with experts", "Share of items where the model's score equals the "
                      "curated expert score; higher is better."),
    "experts.within_one": ("Within one point of experts", "Share of items where the model's score is at most "
                           "1 point from the expert's; higher is better."),
    "experts.qwk": ("Agreement with experts (weighted kappa)", "Quadratic-weighted Cohen's kappa between model and "
                    "expert scores: 1 perfect, 0 chance level; higher is better."),
    "experts.mae": ("Average error vs experts (points)", "Mean absolute difference between model and expert "
                    "scores on the 1-5 scale; lower is better."),
    "pearson": ("{dim}: correlation with clients", "Pearson correlation between the model's {dim} score and the "
                "client's own WAI-SR {dim} score across sessions (the paper's main metric); higher is better."),
    "mse": ("{dim}: squared error vs clients", "Mean squared error between the model's {dim} score and the "
            "client's own {dim} score; lower is better."),
    "pearson_expected": ("{dim}: correlation with clients (expected score)", "As the correlation, using the "
                         "probability-weighted expected score instead of the chosen score; higher is better."),
    "mse_expected": ("{dim}: squared error vs clients (expected score)", "As the squared error, using the "
                     "probability-weighted expected score; lower is better."),
}
UNCERTAINTY = ("Model uncertainty: the spread (standard deviation, in scale points) of the model's probabilities "
               "over the five answers, averaged over the 12 items. 0 = the model is sure; around 1 or more = it "
               "hesitates between several answers. Review the most uncertain sessions first.")


def describe(key: str) -> tuple[str, str]:
    """(plain name, explanation) for a metric key such as ``goal.pearson``; unknown keys as is."""
    if key in METRICS:
        return METRICS[key]
    dim, _, metric = key.partition(".")
    if dim in DIMENSIONS and metric in METRICS:
        name, text = METRICS[metric]
        return name.format(dim=DIMENSIONS[dim]), text.format(dim=DIMENSIONS[dim])
    return key, ""


def metric_label(key: str) -> str:
    """HTML: the plain name with the explanation as a tooltip and the key in small print."""
    name, text = describe(key)
    return (f'<span class="care-metric" title="{esc(text)}">{esc(name)}</span> '
            f'<span class="care-muted">{esc(key)}</span>')
