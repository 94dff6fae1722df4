"""Starting the review app: its flags, the first-run bootstrap and the launch.

``care app`` and ``python annotate_app.py`` both run :func:`main` here::

    care app                                  # ./care_store, SmolLM2, http://127.0.0.1:7860
    care app --store DIR --model PATH_OR_smollm2 [--adapter DIR] --host H --port P
    care app --admin-user NAME --admin-password PW   # first admin (or CARE_ADMIN_USER/_PASSWORD)
    care app --demo [--share]                 # the public demo: sample sessions or pasted text, no store
    care app --backend vllm                   # predictions through vLLM (`make setup-vllm` first)
    care app --host 0.0.0.0 --ssl-keyfile key.pem --ssl-certfile cert.pem   # on the network: TLS only
    care app --backend openai --base-url URL --served-model NAME   # a model served elsewhere

On first run the store gets the bundled sample sessions with the embedded default's predictions
(``data/``) and one admin account (its password is printed once unless given). Public links are
refused except for the demo. An address other than loopback is refused without TLS
(``--ssl-keyfile``/``--ssl-certfile``) unless ``--insecure-http`` says the network is trusted:
passwords and transcripts would cross it in clear text. Logins end after ``--idle-minutes``
without activity and ``--session-hours`` in all (studio.login_guard). Importing this module
starts nothing and imports neither Gradio nor torch; it sets the telemetry and offline defaults
before anything can load them.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GRADIO_RUN_HISTORY", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_STORE = "care_store"
PROG = "python annotate_app.py"

EXAMPLES = """examples:
  {prog}                                  # ./care_store on http://127.0.0.1:7860 with SmolLM2
  {prog} --store DIR --model /models/Llama-3.1-8B-Instruct [--adapter DIR] --device cuda --port 7861
  {prog} --admin-user NAME --admin-password PW   # the first admin of a new store
  {prog} --demo [--share]                 # the public demo: samples or pasted text, no store
  {prog} --backend vllm                   # predictions through vLLM (`make setup-vllm` first)
  {prog} --host 0.0.0.0 --ssl-keyfile key.pem --ssl-certfile cert.pem   # on the network, over TLS
  {prog} --backend openai --base-url http://gpu-01:8000/v1 --served-model NAME --model DIR  # a served model
"""
LOOPBACK = ("127.0.0.1", "localhost", "::1")
INSECURE_REFUSED = ("Refusing to serve on {host} over plain HTTP: passwords, session cookies and transcripts would "
                    "cross the network unencrypted.",
                    "Give --ssl-keyfile and --ssl-certfile (a certificate for this host), or serve on 127.0.0.1 behind "
                    "a TLS proxy; --insecure-http serves plain HTTP anyway (only on a network you trust).")


def is_loopback(host: str) -> bool:
    import ipaddress

    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_problem(args) -> str | None:
    """Why this launch must not start (non-loopback without TLS, half a TLS pair), else None."""
    if bool(args.ssl_keyfile) != bool(args.ssl_certfile):
        return ("--ssl-keyfile and --ssl-certfile go together. Fix: give both (the private key and its "
                "certificate), or neither.")
    if not args.ssl_keyfile and not is_loopback(args.host) and not args.insecure_http:
        return "{} Fix: {}".format(*INSECURE_REFUSED).format(host=args.host)
    return None


def build_app(repo, predictor=None, **kwargs):
    """The review app (an unlaunched ``gr.Blocks``) over ``repo`` with ``predictor``."""
    from studio.app import build_app as _build

    return _build(repo, predictor, **kwargs)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def parse_args(argv=None, prog: str = PROG) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=prog, description="CARE Review Studio (review app).",
                                 epilog=EXAMPLES.format(prog=prog),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=os.environ.get("CARE_STORE", DEFAULT_STORE),
                    help="store folder (created on first run; default ./care_store or CARE_STORE)")
    ap.add_argument("--model", default=os.environ.get("CARE_MODEL"),
                    help="base model: 'smollm2' (the embedded default) or a local model folder; "
                         "default: the store's active model version, else smollm2")
    ap.add_argument("--adapter", default=os.environ.get("CARE_ADAPTER"), help="LoRA adapter folder (optional)")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    from care_model.inference.backends.flags import add_backend_args

    add_backend_args(ap, env_defaults=True)  # --backend engine|vllm|openai (or CARE_BACKEND), --base-url ...
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=int(os.environ.get("CARE_PORT", "7860")))
    ap.add_argument("--admin-user", default=os.environ.get("CARE_ADMIN_USER"), help="first admin's name (first run)")
    ap.add_argument("--admin-password", default=os.environ.get("CARE_ADMIN_PASSWORD"),
                    help="first admin's password (first run; default: a random one, printed once)")
    ap.add_argument("--no-samples", action="store_true", help="do not import the sample sessions into an empty store")
    ap.add_argument("--demo", action="store_true", help="the public demo: no store, sample sessions or pasted text")
    ap.add_argument("--share", action="store_true", help="public Gradio link; only with --demo")
    ap.add_argument("--ssl-keyfile", default=os.environ.get("CARE_SSL_KEYFILE"), help="TLS private key (PEM)")
    ap.add_argument("--ssl-certfile", default=os.environ.get("CARE_SSL_CERTFILE"), help="TLS certificate (PEM)")
    ap.add_argument("--insecure-http", action="store_true",
                    help="serve a non-loopback --host over plain HTTP anyway (a trusted network only)")
    ap.add_argument("--idle-minutes", type=float, default=float(os.environ.get("CARE_IDLE_MINUTES", "30")),
                    help="log a session out after this long without activity (default 30)")
    ap.add_argument("--session-hours", type=float, default=float(os.environ.get("CARE_SESSION_HOURS", "12")),
                    help="log a session out this long after its login, active or not (default 12)")
    return ap.parse_args(argv)


def main(argv=None, prog: str = PROG) -> int:
    args = parse_args(argv, prog=prog)
    from care_model.core.errors import CareError

    if args.share and not args.demo:
        from studio.app import SHARE_REFUSED

        print(f"error: {SHARE_REFUSED[0]} Fix: {SHARE_REFUSED[1]}", file=sys.stderr)
        return 2
    problem = tls_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # ssl_verify=False: Gradio's one request to its own startup route accepts a self-signed certificate
    tls = {"ssl_keyfile": args.ssl_keyfile, "ssl_certfile": args.ssl_certfile, "ssl_verify": False} \
        if args.ssl_keyfile else {}
    scheme = "https" if tls else "http"
    try:
        from care_model.inference.models import ModelSpec
        from care_model.inference.predictor import PredictConfig, Predictor

        pinned = bool(args.model or args.adapter)
        spec = ModelSpec(base=args.model or "smollm2", adapter=args.adapter, device=args.device)
        from care_model.inference.backends.flags import backend_settings

        config = PredictConfig(**backend_settings(args))
        if args.backend == "vllm":
            from care_model.inference.backends.vllm_backend import vllm_python

            vllm_python()  # a missing vLLM venv stops the start, naming `make setup-vllm`
        if args.demo:
            from studio.demo import build_demo

            demo = build_demo(Predictor(spec, config), shared=args.share)
            demo.launch(server_name=args.host, server_port=args.port, share=args.share, **tls)
            return 0
        from store import Repository
        from studio.bootstrap import ActivePredictor, ensure_admin, import_samples

        repo = Repository(args.store)
        predictor = ActivePredictor(repo, spec, pinned=pinned, config=config)
        if not args.no_samples:
            report = import_samples(repo)
            if report:
                drafts = report.get("drafts_added", 0)
                print(f"First run: imported {report['added']} sample sessions with "
                      f"{report['predictions_added'] - drafts} predictions and {drafts} drafts into {args.store}.")
        created = ensure_admin(repo, args.admin_user, args.admin_password)
        if created:
            name, generated = created
            if generated:
                print(f"First run: created admin account  user: {name}  password: {generated}\n"
                      "  (shown only now; add users and change roles in the Admin tab)", flush=True)
            else:
                print(f"First run: created admin account {name!r} with the given password.")
        demo = build_app(repo, predictor)
        from studio.login_guard import SessionPolicy

        import signal

        # `kill` (SIGTERM) stops the app like Ctrl-C: the server closes and the exit handlers run, which
        # delete this run's export files (studio.downloads.purge); Python's default would skip them
        signal.signal(signal.SIGTERM, _interrupt)
        print(f"CARE Review Studio on {scheme}://{args.host}:{args.port}  "
              f"(store {args.store}, model {predictor.model_version})", flush=True)
        demo.launch(server_name=args.host, server_port=args.port, quiet=True,
                    session_policy=SessionPolicy(idle_s=args.idle_minutes * 60, absolute_s=args.session_hours * 3600),
                    **tls)
    except CareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
