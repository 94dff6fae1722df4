"""The JSON endpoints of human evaluation (``gr.api``): the same pure functions as the tabs.

``/eval_campaigns``, ``/eval_task``, ``/eval_save``, ``/eval_systems``, ``/eval_create``,
``/eval_results``, ``/eval_set_status`` (registered by :mod:`studio.evaluation_tab`).
"""
import gradio as gr

from . import campaign_results as cr
from . import campaign_rating as rt, campaign_setup as cs
from . import campaigns as cp
from . import ui

ADMIN = ("admin",)


class EvalApi:
    """JSON endpoints (``gr.api``); the same pure functions as the tabs."""

    def __init__(self, ctx):
        self.ctx = ctx

    def _who(self, request, *roles):
        return ui.require_role(self.ctx.repo, request, *(roles or ui.ALL_ROLES))

    @ui.guard
    def eval_campaigns(self, request: gr.Request = None) -> list:
        """Campaigns I rate (with my progress); admins: all, with systems and everyone's progress."""
        return cp.list_campaigns(self.ctx.repo, self._who(request))

    @ui.guard
    def eval_task(self, campaign_id: str, task_id: str = "", request: gr.Request = None) -> dict:
        """One of my tasks (default: the next one not submitted), blind: no system names."""
        return rt.rater_task(self.ctx.repo, self._who(request), campaign_id, task_id or None)

    @ui.guard
    def eval_save(self, campaign_id: str, task_id: str, scores: dict | None = None, comment: str | None = None,
                  choice: str | None = None, submit: bool = False, expected_version: int = 0,
                  request: gr.Request = None) -> dict:
        """Save (and with ``submit`` finish) my rating of a task on top of ``expected_version``."""
        return rt.save_rating(self.ctx.repo, self._who(request), campaign_id, task_id, scores=scores, comment=comment,
                              choice=choice or None, submit=bool(submit), expected_version=int(expected_version or 0))

    @ui.guard
    def eval_systems(self, session_ids: list[str] | None = None, request: gr.Request = None) -> list:
        """Admin: systems that can be rated on the sessions (all if none given), with coverage."""
        return cs.available_systems(self.ctx.repo, self._who(request, *ADMIN), session_ids)

    @ui.guard
    def eval_create(self, name: str, systems: list[str], raters: list[str], mode: str = "both", n_targets: int = 20,
                    overlap: int = 2, sampling: str = "random", strata: str = "dimension",
                    session_ids: list[str] | None = None, items: list[int] | None = None, seed: int = 0,
                    allow_self_rating: bool = False, reveal_after_each: bool = False,
                    request: gr.Request = None) -> dict:
        """Admin: create a campaign; returns its id and size. Raters never rate a curated rationale
        they wrote unless ``allow_self_rating`` (then listed in ``self_rating``). Pairwise systems are
        revealed to a rater after the campaign, or after each choice with ``reveal_after_each``;
        ``identical_skipped`` counts the targets and pairs left out because their texts are identical."""
        doc = cs.create_campaign(self.ctx.repo, self._who(request, *ADMIN), name=name, systems=systems, mode=mode,
                                 n_targets=int(n_targets), raters=raters, overlap=int(overlap), sampling=sampling,
                                 strata=strata, session_ids=session_ids, items=[str(i) for i in items or []],
                                 seed=int(seed),
                                 allow_self_rating=allow_self_rating, reveal_after_each=bool(reveal_after_each))
        return {"id": doc["id"], "targets": len(doc["targets"]), "tasks": len(doc["tasks"]),
                "self_rating": doc["self_rating"], "identical_skipped": doc["sampling"]["identical_skipped"],
                "reveal": doc["reveal"],
                "per_rater": {r: len(t) for r, t in doc["assignments"].items()}}

    @ui.guard
    def eval_results(self, campaign_id: str, request: gr.Request = None) -> dict:
        """Admin: rubric means and pass rates, win rates, Bradley-Terry, alpha and ICC(2,k)."""
        return cr.campaign_results(self.ctx.repo, campaign_id, self._who(request, *ADMIN))

    @ui.guard
    def eval_set_status(self, campaign_id: str, status: str, request: gr.Request = None) -> dict:
        """Admin: "open" or "closed" (closed campaigns take no more ratings)."""
        return cp.set_campaign_status(self.ctx.repo, self._who(request, *ADMIN), campaign_id, status)


ENDPOINTS = ("eval_campaigns", "eval_task", "eval_save", "eval_systems", "eval_create", "eval_results",
             "eval_set_status")
