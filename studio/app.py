"""``build_app(repo, predictor)``: the review app as a Gradio Blocks, built from tabs.

A tab is a module with ``build_tab(ctx)`` that creates its components and events inside the
open Blocks and may register page-load hooks with ``ctx.on_load(fn, inputs, outputs)``.
:data:`DEFAULT_TABS` lists the tab modules in order; pass ``tabs=[...]`` to build_app, or
append to the list, to add one (human evaluation, models & training, ...).

The returned :class:`StudioBlocks` carries safe launch defaults, so ``demo.launch(...)`` from a
test or from ``annotate_app.py`` cannot forget them: login against the store's users, no public
link (``share`` is refused unless the app is the demo), no file paths served (``allowed_paths``
empty, the store folder blocked), no run history (it would keep transcripts in the browser),
no MCP server, no monitoring page, CSS/JS/theme of the studio.

Building starts nothing: no server, thread or model load; the predict worker starts on the
first job.
"""
import importlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GRADIO_RUN_HISTORY", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Gradio's queue rebuilds a pandas summary of every past event (up to 10,000) after EACH event, for a
# monitoring page the studio never serves: O(events) of CPU per request, growing all day (issue 20).
# Keep one record and never recompute (both read when the queue is built).
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(10 ** 12))
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1")

import gradio as gr  # noqa: E402

from care_model.core.errors import ConfigError  # noqa: E402
from care_model.core.wai import load_form  # noqa: E402

from . import api, ui  # noqa: E402
from .gradio_boot import calm_queue  # noqa: E402
from .jobs import PredictJobs  # noqa: E402
from .role_view import VIEW_ROLE, RoleViews  # noqa: E402

DEFAULT_TABS = ["studio.review_tab", "studio.evaluation_tab", "studio.adjudication_tab", "studio.training_tab",
                "studio.admin_tab"]
DEFAULT_TABS.insert(DEFAULT_TABS.index("studio.admin_tab"), "studio.insights_tab")  # issue 21: before Admin
TITLE = "CARE Review Studio"


class ShareRefused(ConfigError):
    """A public link was asked for outside the demo."""


SHARE_REFUSED = ("Public links (share) are refused: this app serves health data from a real store.",
                 "Serve it on your network with --host, or run the demo (--demo --share), which has no store.")


@dataclass
class AppContext:
    """What every tab's handlers need; one per app (no per-user data here)."""

    repo: Any
    predictor: Any = None
    jobs: PredictJobs | None = None
    demo: bool = False
    form: Any = field(default_factory=load_form)
    loads: list = field(default_factory=list)
    components: dict = field(default_factory=dict)  # named components tabs share (e.g. "user_html")
    views: RoleViews = field(default_factory=RoleViews)

    def staff_only(self, block) -> None:
        """``block`` (a tab) is for adjudicators and admins only: the page an annotator is sent
        leaves it out with all it contains (:mod:`studio.role_view`). Its page-load hooks still
        hide it from annotators and its handlers still check the role."""
        self.views.staff_blocks.append(block)

    def is_staff_only(self, comp) -> bool:
        """Whether ``comp`` is inside a block passed to :meth:`staff_only`."""
        staff = {id(b) for b in self.views.staff_blocks}
        while comp is not None:
            if id(comp) in staff:
                return True
            comp = getattr(comp, "parent", None)
        return False

    def on_load(self, fn: Callable, inputs=None, outputs=None, **kwargs) -> None:
        """Run ``fn`` when a page loads (after login), e.g. to show a tab only to admins;
        ``then=(fn, inputs, outputs[, js])`` chains a second handler (and a browser-side js
        function) after it. ``first=True``: part of the first screen (the review queue, the top
        bar); such loads run at once, every other one after them, so the first screen does not
        wait behind the other tabs' loads on a busy machine."""
        self.loads.append((fn, inputs or [], outputs or [], kwargs))


class StudioBlocks(gr.Blocks):
    """gr.Blocks with the studio's safe launch defaults (see the module docstring)."""

    studio_ctx: AppContext | None = None

    @property
    def config(self):
        """Gradio's config of the app; while the page is served to an annotator (``VIEW_ROLE``,
        set for that request only), the page's config without the staff tabs (studio.role_view)."""
        full = self.__dict__.get("_care_full_config")
        ctx = self.__dict__.get("studio_ctx")
        role = VIEW_ROLE.get()
        if ctx is None or role is None:
            return full
        return ctx.views.config_for(full, role)

    @config.setter
    def config(self, value):
        self.__dict__["_care_full_config"] = value

    def get_api_info(self, *args, **kwargs):
        """The API's description is the whole app's whoever asks first (Gradio caches it)."""
        token = VIEW_ROLE.set(None)
        try:
            return super().get_api_info(*args, **kwargs)
        finally:
            VIEW_ROLE.reset(token)

    def launch(self, *args, **kwargs):
        ctx = self.studio_ctx
        demo = bool(ctx and ctx.demo)
        if kwargs.get("share") and not demo:
            raise ShareRefused(*SHARE_REFUSED)
        if ctx is not None and ctx.repo is not None and "auth" not in kwargs and "auth_dependency" not in kwargs:
            kwargs["auth"] = ctx.repo.check_password
        if ctx is not None and ctx.repo is not None:
            kwargs.setdefault("auth_message", "CARE Review Studio: log in with your store account.")
            blocked = list(kwargs.get("blocked_paths") or [])
            kwargs["blocked_paths"] = blocked + [str(ctx.repo.root.resolve())]
        kwargs["allowed_paths"] = []
        from . import login_guard  # throttled login, sessions that end, nothing before login; private downloads

        login_guard.install(self, kwargs, ctx.repo if ctx is not None else None)
        kwargs["run_history"] = False
        kwargs.setdefault("footer_links", ["api"])
        kwargs.setdefault("mcp_server", False)
        kwargs.setdefault("enable_monitoring", False)
        kwargs.setdefault("pwa", False)
        kwargs.setdefault("ssr_mode", False)
        kwargs.setdefault("show_error", True)
        kwargs.setdefault("css", ui.CSS)
        kwargs.setdefault("js", ui.JS)
        kwargs.setdefault("theme", ui.theme())
        return super().launch(*args, **kwargs)

    async def preprocess_data(self, block_fn, inputs, state, explicit_call=False):
        """Gradio's own checks of component inputs (files, ...) refused with the studio's message,
        not pydantic's (see studio.validate)."""
        import pydantic

        from care_model.core.errors import CareError

        from .validate import check_inputs

        try:
            check_inputs(block_fn, inputs)  # control characters and bidi overrides in any text: refused
        except CareError as err:
            raise ui.ui_error(err) from None
        try:
            return await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except pydantic.ValidationError as err:
            from .validate import component_input_error

            raise ui.ui_error(component_input_error(block_fn, inputs, err)) from None
        except gr.Error as err:  # e.g. a value not among a dropdown's choices: no traceback in the log
            if not getattr(err, "print_exception", True):
                raise
            api = getattr(block_fn, "api_name", None) or block_fn.name
            from care_model.core.errors import ValidationError

            raise ui.ui_error(ValidationError(f"/{api}: {err.message}",
                                              "Send one of the values studio/API.md lists.")) from None

    def close(self, *args, **kwargs):
        ctx = self.studio_ctx
        if ctx is not None and ctx.jobs is not None:
            ctx.jobs.close(timeout=1.0)
        return super().close(*args, **kwargs)


def _tab_module(tab):
    return importlib.import_module(tab) if isinstance(tab, str) else tab


def build_app(repo, predictor=None, *, tabs=None, title: str = TITLE) -> StudioBlocks:
    """The review app over ``repo`` with ``predictor`` (anything with ``model_version`` and
    ``predict_session``; None: no predictions from this app). Returns an unlaunched Blocks."""
    ctx = AppContext(repo=repo, predictor=predictor,
                     jobs=PredictJobs(repo, predictor) if predictor is not None else None)
    with StudioBlocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        demo.studio_ctx = ctx
        user_html = gr.HTML(f'<div id="care-topbar"><span class="care-brand">{title}</span></div>',
                            elem_id="care-topbar-box", js_on_load=None)
        ctx.components["user_html"] = user_html
        ctx.components["topbar"] = Shell(ctx).topbar  # tabs chain it after actions that change the header
        ctx.on_load(Shell(ctx).topbar, [], [user_html], first=True)
        api.build_tab(ctx)  # the JSON endpoints (no components) first: they own their api_names
        with gr.Tabs(elem_id="care-tabs"):
            for tab in (DEFAULT_TABS if tabs is None else tabs):
                _tab_module(tab).build_tab(ctx)
        _wire_loads(demo, ctx.loads, ctx)
    demo.queue(default_concurrency_limit=8)
    return calm_queue(demo)


def _wire_loads(demo, loads: list, ctx: AppContext | None = None) -> None:
    """The page-load hooks, in at most three requests whatever the number of tabs: the first
    screen's (``first=True``: the top bar, the review queue) at once, merged into one request, then
    what that chains (``then``); every other tab's load merged into one request after that chain's
    last step, so the first screen does not wait behind the other tabs on a busy machine (issue 20:
    nine load requests made the browser apply nine replies before the queue showed); then the
    staff tabs' loads (``ctx.staff_only``), merged, which an annotator's page leaves out."""
    quiet = dict(api_visibility="private", show_progress="hidden")
    first = [ld for ld in loads if ld[3].get("first")]
    rest = [ld for ld in loads if not ld[3].get("first")]
    last = None
    if first:
        fn, inputs, outputs = merge_loads(first)
        last = demo.load(fn, inputs, outputs, **quiet)
        for _, _, _, kwargs in first:
            then = kwargs.get("then")
            if then is not None and then[0] is not None:
                last = last.then(*then[:3], **quiet)
        for js in [kw["then"][3] for _, _, _, kw in first if kw.get("then") and len(kw["then"]) > 3]:
            last = last.then(None, js=js)  # browser-side functions to run after it
    if rest:
        for _, _, _, kwargs in rest:
            if kwargs.get("then") is not None:
                raise ValueError("only first=True page loads may chain a 'then'")
        # the staff tabs' loads apart: an annotator's page leaves them out (studio.role_view)
        is_staff = [ctx is not None and any(ctx.is_staff_only(c) for c in ld[2] or []) for ld in rest]
        for group in ([ld for ld, s in zip(rest, is_staff) if not s], [ld for ld, s in zip(rest, is_staff) if s]):
            if not group:
                continue
            fn, inputs, outputs = merge_loads(group)
            last = last.then(fn, inputs, outputs, **quiet) if last is not None else demo.load(fn, inputs, outputs,
                                                                                             **quiet)


def merge_loads(loads: list):
    """One handler for several page-load hooks ``(fn, inputs, outputs, kwargs)``: it calls each with
    its own inputs and the request and returns every update keyed by component. A hook that fails
    with a message (gr.Error) shows it as a warning and leaves its outputs as they are; the others'
    updates still arrive."""
    inputs = [comp for _, ins, _, _ in loads for comp in (ins or [])]
    outputs = []
    for _, _, outs, _ in loads:
        outputs += [comp for comp in (outs or []) if all(comp is not o for o in outputs)]

    def merged(request: gr.Request, *values):
        updates, at = {}, 0
        for fn, ins, outs, _ in loads:
            args = values[at:at + len(ins or [])]
            at += len(ins or [])
            try:
                result = fn(*args, request=request)
            except gr.Error as err:
                gr.Warning(err.message)
                continue
            outs = list(outs or [])
            if isinstance(result, dict):
                updates.update(result)
            elif len(outs) == 1:
                updates[outs[0]] = result
            else:
                updates.update(zip(outs, result))
        return updates

    return merged, inputs, outputs


class Shell:
    """Handlers of the page frame (top bar)."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    def topbar(self, request: gr.Request):
        from .render import esc

        from .access import active_model_version

        access = ui.require_role(self.ctx.repo, request, *ui.ALL_ROLES)
        model = active_model_version(self.ctx.repo, self.ctx.predictor) or "none"
        return (f'<div id="care-topbar"><span class="care-brand">{TITLE}</span>'
                f'<span>Signed in as <b id="care-user">{esc(access.username)}</b> ({esc(access.role)}) · '
                f'model {esc(model)} · <a href="/logout">Log out</a></span></div>')
