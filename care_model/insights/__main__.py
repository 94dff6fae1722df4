"""``python -m care_model.insights``: the same command as ``care insights`` (:mod:`care_model.jobs.insights`).

The jobs module opens the store; it is imported only here, when the command runs, so the
insights package itself never imports the store.
"""
import sys


def main(argv=None) -> int:
    from care_model.jobs.insights import main as run  # lazy: the one allowed step from insights up to jobs

    return run(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
