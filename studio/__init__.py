"""The review app's modules (CARE Review Studio).

``annotate_app.py`` is the entry point; :func:`studio.app.build_app` assembles the tabs.

* :mod:`studio.access`  who may see and edit what (roles, assignments, coding slots, settings)
* :mod:`studio.review`  pure review logic: queue rows, item states, checks, saving, submitting
* :mod:`studio.render`  HTML of transcripts, cards, diffs and summaries (every user text escaped)
* :mod:`studio.jobs`    the one background worker that runs predict jobs, with progress
* :mod:`studio.review_tab`, :mod:`studio.admin_tab`, :mod:`studio.api`  Gradio tabs and endpoints
* :mod:`studio.demo`    the public demo (no store)

Importing any of these starts nothing: no server, no thread, no model.
"""
from .gradio_boot import install as _install_gradio_boot

_install_gradio_boot()  # before any studio module imports Gradio: no stub files rewritten at start-up
