"""CARE Review Studio: the review app clinical experts use every day (the same as ``care app``).

    python annotate_app.py                       # ./care_store, SmolLM2, http://127.0.0.1:7860
    python annotate_app.py --store DIR --model PATH_OR_smollm2 [--adapter DIR] --host H --port P
    python annotate_app.py --admin-user NAME --admin-password PW   # first admin (or CARE_ADMIN_USER/_PASSWORD)
    python annotate_app.py --demo [--share]     # the public demo: sample sessions or pasted text, no store
    python annotate_app.py --backend vllm        # predictions through vLLM (`make setup-vllm` first)

The flags, the first-run bootstrap and the launch live in :mod:`studio.launch`; this file is
the entry point `make app` runs. ``build_app(repo, predictor)`` is the factory; importing this
module starts nothing.
"""
import sys

from studio.launch import DEFAULT_STORE, build_app, main, parse_args  # noqa: F401  (this module's API)

if __name__ == "__main__":
    sys.exit(main())
