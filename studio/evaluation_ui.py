"""The handlers of the Human evaluation tabs (:mod:`studio.evaluation_tab` lays them out).

:class:`EvalState` is one page's open task; :class:`EvalUI` holds the rater's and the admin's
handlers, thin over :mod:`studio.campaign_rating`, :mod:`studio.campaign_setup`,
:mod:`studio.campaigns` and :mod:`studio.campaign_results`. Every handler checks the role on the server.
"""
import threading
from types import SimpleNamespace

import gradio as gr

from care_model.core.errors import CareError

from . import campaign_results as cr
from . import campaign_rating as rt, campaign_setup as cs
from . import campaigns as cp
from . import admin, render, ui
from .messages import minute, time_token
from .evaluation_render import (head_html, output_html, plots, results_html, reveal_html, state_html,
                                transcript_html)

ADMIN = ("admin",)
CAMPAIGN_HEADERS = ["Campaign", "Id", "Mode", "Status", "Targets", "Systems", "Raters (done/total)", "Created"]


# ----------------------------------------------------------------------------- state
class EvalState:
    """One page's open task: the blind view and the version its rating was loaded at."""

    def __init__(self, view: dict):
        self.lock = threading.RLock()
        self.view = view
        self.pending_comment: str | None = None
        self.superseded = False  # the page moved on to another task: late events save but do not redraw

    def __deepcopy__(self, memo):  # shared by the page's events on purpose (see review_state.ReviewState)
        return self

    @property
    def version(self) -> int:
        return self.view["rating"]["version"]


class EvalUI:
    def __init__(self, ctx, c: SimpleNamespace):
        self.ctx, self.c = ctx, c

    def _who(self, request, *roles):
        return ui.require_role(self.ctx.repo, request, *(roles or ui.ALL_ROLES))

    # ----- rater ------------------------------------------------------------------------
    def _choices(self, access):
        return cp.rater_choices(self.ctx.repo, access)  # progress read now: "(k/N done)", "(all N done)"

    def on_load(self, request: gr.Request):
        access = self._who(request)
        choices = self._choices(access)
        return gr.update(choices=choices, value=choices[0][1] if choices else None), (
            "" if choices else render.status_html("You are not a rater in any evaluation campaign yet.", "idle"))

    def refresh_campaigns(self, current, request: gr.Request):
        """On visiting the tab: campaigns created since the page loaded, keeping the one chosen."""
        choices = self._choices(self._who(request))
        ids = [cid for _, cid in choices]
        return gr.update(choices=choices, value=current if current in ids else (ids[0] if ids else None)), (
            "" if choices else render.status_html("You are not a rater in any evaluation campaign yet.", "idle"))

    def _show(self, view: dict, access, message: str = "", kind: str = "idle", old: EvalState | None = None) -> dict:
        """The task's page; the campaign dropdown's "(k/N done)" is read again (a move follows every rating)."""
        c, r = self.c, view["rating"]
        if old is not None:
            with old.lock:
                old.superseded = True
        rubric = view["kind"] == "rubric"
        # Visibility only where it changes: the page already shows the task area, and the rubric or the comparison
        # when the previous task was of the same kind. A visibility update makes Gradio's page walk every component
        # below it, for a second or more on a loaded machine, and a radio clicked meanwhile was shown cleared.
        shown_before = old is not None
        same_kind = shown_before and old.view.get("kind") == view["kind"]
        up = {c.st: EvalState(view), c.key: view["task_id"], c.head: head_html(view), c.state: state_html(view),
              c.transcript: transcript_html(view["session"]), c.comment: gr.update(value=r["comment"]),
              c.prev_btn: gr.update(interactive=bool(view["prev_task"])),
              c.campaign: gr.update(choices=self._choices(access)),  # new labels; the value stays as chosen
              c.status: render.status_html(message or f"Task {view['position']} of {view['total']} "
                                           f"({time_token()}).", kind)}
        if not shown_before:
            up[c.area] = gr.update(visible=True)
        if not same_kind:
            up[c.rubric], up[c.pairwise] = gr.update(visible=rubric), gr.update(visible=not rubric)
        if rubric:
            up[c.output] = output_html("The rationale", view["output"])
            for crit in cp.CRITERIA:
                up[c.crit[crit]] = gr.update(value=r["scores"].get(crit))
        else:
            up[c.pair] = f'<div class="eval-pair">{output_html("A", view["a"])}{output_html("B", view["b"])}</div>'
            up[c.choice] = gr.update(value=r["choice"], interactive=r["status"] != "submitted")
            up[c.reveal] = reveal_html(view)
        return up

    @ui.guard
    def start(self, campaign_id, st, request: gr.Request):
        access = self._who(request)
        if not campaign_id:
            raise CareError("No campaign chosen.", "Pick one of your campaigns.")
        view = rt.rater_task(self.ctx.repo, access, campaign_id)
        return self._show(view, access, old=st)

    def _save(self, st: EvalState, access, full: bool = False, **fields) -> dict:
        """Save on top of the version the page loaded. On a conflict (the same task saved from
        another window) nothing is written; ``full`` (moves) reload the task, small saves say so."""
        with st.lock:
            v = st.view
            res = rt.save_rating(self.ctx.repo, access, v["campaign_id"], v["task_id"], expected_version=st.version,
                                 **fields)
            if res["status"] == "conflict":
                if st.superseded or not full:
                    return {"conflict": {self.c.status: render.status_html(
                        "This task was saved in another window; nothing was overwritten. Press “Start / continue” "
                        "to load the saved version.", "warn")}}
                view = rt.rater_task(self.ctx.repo, access, v["campaign_id"], v["task_id"])
                return {"conflict": self._show(view, access, "This task was saved in another window; its saved "
                                                             "version is shown now. Nothing was overwritten.", "warn",
                                               old=st)}
            v["rating"], v["done"] = res["rating"], res["done"]
            if "reveal" in res:
                v["reveal"] = res["reveal"]
            if fields.get("comment") is not None and st.pending_comment == fields["comment"]:
                st.pending_comment = None
        return res

    def _saved_updates(self, st: EvalState, res: dict, what: str) -> dict:
        """The status line and the rating's state line ("draft saved", not "not rated yet"), unless the page moved
        on; never the task's header (only moves redraw it: a late reply cannot put an old task's header back)."""
        if "conflict" in res:
            return res["conflict"]
        with st.lock:
            if st.superseded:
                return {self.c.status: gr.skip(), self.c.state: gr.skip()}
            state = state_html(st.view)
        msg = (f"{what} saved (version {res['version']}) at {time_token()}." if not res["unchanged"]
               else f"{what} is saved.")
        return {self.c.status: render.status_html(msg, "ok"), self.c.state: state}

    # Events carry the task id the page showed (``key``): gr.State is read when an event is
    # processed, so a score clicked just before "Save & next" may be handled after the page moved
    # on; such a late event is dropped (the move itself saved every field of the task it left).
    @staticmethod
    def _current(st, key) -> bool:
        return st is not None and not st.superseded and key == st.view["task_id"]

    def crit_save(self, crit: str):
        @ui.guard
        def save(st, key, value, request: gr.Request):
            access = self._who(request)
            if not self._current(st, key) or value is None:
                return {self.c.status: gr.skip()}
            res = self._save(st, access, scores={crit: value})
            return self._saved_updates(st, res, cp.CRITERION_INFO[crit]["name"])
        save.__name__ = f"eval_score_{crit}"
        return save

    @ui.guard
    def choice_save(self, st, key, value, request: gr.Request):
        access = self._who(request)
        if not self._current(st, key) or not value or st.view["rating"]["status"] == "submitted":
            return {self.c.status: gr.skip()}
        return self._saved_updates(st, self._save(st, access, choice=value), "Choice")

    @ui.guard
    def comment_note(self, st, key, text, request: gr.Request):
        self._who(request)
        if not self._current(st, key):
            return {self.c.status: gr.skip(), self.c.timer: gr.skip()}
        with st.lock:
            st.pending_comment = None if (text or "") == st.view["rating"]["comment"] else (text or "")
        return {self.c.status: render.status_html("Unsaved comment (saving in a moment)…", "busy")
                if st.pending_comment is not None else gr.skip(), self.c.timer: gr.update(active=True)}

    @ui.guard
    def comment_save(self, st, key, text, request: gr.Request):
        access = self._who(request)
        if not self._current(st, key) or (text or "") == st.view["rating"]["comment"] or not self._editable(st):
            return {self.c.status: gr.skip()}
        return self._saved_updates(st, self._save(st, access, comment=text or ""), "Comment")

    @ui.guard
    def tick(self, st, request: gr.Request):
        """Autosave of a comment being typed; the timer runs only while one is pending."""
        if st is None or st.pending_comment is None or not self._editable(st):
            return {self.c.status: gr.skip(), self.c.timer: gr.update(active=False)}
        access = self._who(request)
        return {**self._saved_updates(st, self._save(st, access, comment=st.pending_comment), "Comment"),
                self.c.timer: gr.update(active=False)}

    @staticmethod
    def _editable(st) -> bool:
        v = st.view
        return v["campaign_status"] == "open" and not (v["kind"] == "pairwise" and v["rating"]["status"] == "submitted")

    @staticmethod
    def _fields(v, f, r, i, choice, comment) -> dict:
        fields = ({"scores": {"faithfulness": f, "relevance": r, "informativeness": i}} if v["kind"] == "rubric"
                  else {"choice": choice or None})
        return {**fields, "comment": comment or ""}

    @ui.guard
    def next(self, st, key, f, r, i, choice, comment, request: gr.Request):
        """Save & next: submit this task (a comparison: submit and reveal, then next on the second press)."""
        access = self._who(request)
        if not self._current(st, key):
            return {self.c.status: gr.skip()}
        v = st.view
        if self._editable(st):
            res = self._save(st, access, full=True, submit=True, **self._fields(v, f, r, i, choice, comment))
            if "conflict" in res:
                return res["conflict"]
            if v["kind"] == "pairwise" and v.get("reveal"):  # revealed now: show it before moving on
                done = v["done"] >= v["total"]
                return self._show(v, access, "Submitted; you have finished the campaign, so the systems are revealed "
                                  "above." if done else "Submitted; the systems are revealed above.", "ok", old=st)
        nxt = v["next_task"]
        if nxt is None or v["done"] >= v["total"]:
            first_open = rt.rater_task(self.ctx.repo, access, v["campaign_id"])
            if first_open["rating"]["status"] == "submitted":
                return self._show(first_open, access, f"All {v['total']} tasks are done. Thank you!", "ok", old=st)
            nxt = first_open["task_id"] if nxt is None else nxt
        return self._show(rt.rater_task(self.ctx.repo, access, v["campaign_id"], nxt), access, "Saved.", "ok", old=st)

    @ui.guard
    def prev(self, st, key, f, r, i, choice, comment, request: gr.Request):
        """Previous task; what was entered here is saved first (not submitted)."""
        access = self._who(request)
        if not self._current(st, key) or not st.view["prev_task"]:
            return {self.c.status: gr.skip()}
        if self._editable(st):
            fields = self._fields(st.view, f, r, i, choice, comment)
            fields["scores"] = {k: x for k, x in (fields.get("scores") or {}).items() if x is not None} or None
            res = self._save(st, access, full=True, **fields)
            if "conflict" in res:
                return res["conflict"]
        return self._show(rt.rater_task(self.ctx.repo, access, st.view["campaign_id"], st.view["prev_task"]), access,
                          old=st)

    # ----- admin ------------------------------------------------------------------------
    def _table(self, access):
        rows = [[r["name"], r["id"], r["mode"], r["status"], r["targets"], ", ".join(r["systems"]),
                 ", ".join(f'{u} {p["done"]}/{p["total"]}' for u, p in r["progress"].items()), minute(r["created_at"])]
                for r in cp.list_campaigns(self.ctx.repo, access)]
        return {"data": rows, "headers": CAMPAIGN_HEADERS}

    def admin_load(self, request: gr.Request):
        access = self._who(request)
        if access.role != "admin":
            return (gr.update(visible=False),) + (gr.skip(),) * 3
        return (gr.update(visible=True), *self.admin_refresh(None, request))

    def admin_refresh(self, current, request: gr.Request):
        """The campaign table and choices and the raters (on load, and on visiting the Campaigns
        tab: users added and campaigns created since the page loaded appear without a reload)."""
        access = self._who(request)
        if access.role != "admin":
            return (gr.skip(),) * 3
        ids = [(f'{r["name"]} ({r["id"]})', r["id"]) for r in cp.list_campaigns(self.ctx.repo, access)]
        keep = current if current in [i for _, i in ids] else (ids[0][1] if ids else None)
        users = sorted(u["username"] for u in admin.list_users(self.ctx.repo, access) if u["active"])
        return self._table(access), gr.update(choices=ids, value=keep), gr.update(choices=users)

    @ui.guard
    def find_systems(self, session_ids, request: gr.Request):
        access = self._who(request, *ADMIN)
        rows = cs.available_systems(self.ctx.repo, access, session_ids)
        note = " · ".join(f'{r["system"]}: {r["targets"]} items' for r in rows) or "No system has rationales there."
        return gr.update(choices=[r["system"] for r in rows]), render.status_html("Systems with rationales: " + note,
                                                                                  "idle")

    @ui.guard
    def create(self, name, systems, mode, n, raters, overlap, sampling, strata, sessions, items, seed, self_ok,
               reveal_each, request: gr.Request):
        access = self._who(request, *ADMIN)
        doc = cs.create_campaign(self.ctx.repo, access, name=name, systems=systems, mode=mode, n_targets=int(n or 0),
                                 raters=raters, overlap=int(overlap or 1), sampling=sampling, strata=strata,
                                 session_ids=sessions, items=items, seed=int(seed or 0),
                                 allow_self_rating=bool(self_ok), reveal_after_each=bool(reveal_each))
        skipped = doc["sampling"]["identical_skipped"]
        if skipped["targets"] or skipped["pairs"]:
            own_note = (f' Identical texts skipped: {skipped["targets"]} target(s) not sampled, {skipped["pairs"]} '
                        "pair(s) not shown.")
        else:
            own_note = ""
        ids = [(f'{r["name"]} ({r["id"]})', r["id"]) for r in cp.list_campaigns(self.ctx.repo, access)]
        own = sorted({r for names in doc["self_rating"].values() for r in names})
        warn = (f' Warning (recorded): {", ".join(own)} rate rationales they wrote on {len(doc["self_rating"])} '
                f'target(s).' if own else "")
        return (render.status_html(f'Created campaign {doc["name"]} ({doc["id"]}): {len(doc["targets"])} targets, '
                                   f'{len(doc["tasks"])} tasks for {", ".join(doc["raters"])}.{own_note}{warn}',
                                   "warn" if own else "ok"),
                self._table(access), gr.update(choices=ids, value=doc["id"]))

    @ui.guard
    def results(self, campaign_id, request: gr.Request):
        access = self._who(request, *ADMIN)
        if not campaign_id:
            raise CareError("No campaign chosen.", "Pick a campaign.")
        res = cr.campaign_results(self.ctx.repo, campaign_id, access)
        means, wins = plots(res)
        return (results_html(res), gr.update(value=means, visible=not means.empty),
                gr.update(value=wins, visible=not wins.empty), self._table(access))

    @ui.guard
    def export(self, campaign_id, request: gr.Request):
        access = self._who(request, *ADMIN)
        if not campaign_id:
            raise CareError("No campaign chosen.", "Pick a campaign.")
        return gr.update(value=list(cr.export_campaign(self.ctx.repo, access, campaign_id).values()), visible=True)

    def set_status(self, status: str):
        @ui.guard
        def handler(campaign_id, request: gr.Request):
            access = self._who(request, *ADMIN)
            s = cp.set_campaign_status(self.ctx.repo, access, campaign_id, status)
            return render.status_html(f'Campaign {s["name"]} is now {s["status"]}.', "ok"), self._table(access)
        handler.__name__ = f"eval_{status}"
        return handler
