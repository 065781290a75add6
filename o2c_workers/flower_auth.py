"""Flower started from our app refuses to serve without authentication.

``celery -A o2c_workers flower`` imports ``o2c_workers.app`` while Celery's command line
is running its ``flower`` subcommand; ``get_app`` then calls :func:`check_flower_start`,
which reads Flower's own options (environment ``FLOWER_*``, its command line and its
``--conf`` file, parsed by Flower's own functions) and exits unless Flower will ask for
credentials, that is unless basic auth (``FLOWER_BASIC_AUTH``) or OAuth (``FLOWER_AUTH``
with ``FLOWER_AUTH_PROVIDER``, ``FLOWER_OAUTH2_KEY``, ...) is set, the same condition under
which Flower enforces it. ``O2C_FLOWER_ALLOW_ANONYMOUS=true`` lets it start open.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

ALLOW_ANONYMOUS_VAR = "O2C_FLOWER_ALLOW_ANONYMOUS"
#: The exit status of a refused start.
REFUSED_EXIT = 78  # EX_CONFIG

REFUSAL = (
    "o2c-workers: Flower refuses to start without authentication: its UI and API would "
    "answer anyone. Set FLOWER_BASIC_AUTH=user:password (environment only), or Flower's "
    "OAuth settings (FLOWER_AUTH with FLOWER_AUTH_PROVIDER, FLOWER_OAUTH2_KEY, "
    f"FLOWER_OAUTH2_SECRET, FLOWER_OAUTH2_REDIRECT_URI), or {ALLOW_ANONYMOUS_VAR}=true to "
    "serve it without authentication on purpose."
)


def allow_anonymous(environ: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    """``O2C_FLOWER_ALLOW_ANONYMOUS``: ``true`` or ``false`` (unset is false)."""
    raw = environ.get(ALLOW_ANONYMOUS_VAR, "").strip().lower()
    if raw in ("", "false"):
        return False
    if raw == "true":
        return True
    raise SystemExit(f"o2c-workers: {ALLOW_ANONYMOUS_VAR} must be true or false, "
                     f"not {environ[ALLOW_ANONYMOUS_VAR]!r}")


def running_flower() -> bool:
    """Whether this process is Celery's command line running its ``flower`` subcommand."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.invoked_subcommand == "flower"


def flower_argv(argv: Sequence[str]) -> list[str]:
    """The arguments after the ``flower`` subcommand (what Flower parses itself)."""
    args = list(argv)
    return args[args.index("flower") + 1:] if "flower" in args else []


def flower_enforces_auth(argv: Sequence[str]) -> bool:
    """Whether Flower, given its environment and these arguments, will ask for credentials.

    Flower's own parsing (environment, command line, ``--conf`` file) fills its options;
    Flower runs the same again right after, to the same result."""
    from flower.command import apply_env_options, apply_options
    from tornado.options import options

    apply_env_options()
    apply_options(sys.argv[0], list(argv))
    # Flower's handlers ask for credentials exactly when one of these is set.
    return bool(options.basic_auth or options.auth)


def check_flower_start() -> None:
    """Exit with a message naming the variables when Flower would start without auth."""
    if not running_flower() or allow_anonymous():
        return
    if not flower_enforces_auth(flower_argv(sys.argv)):
        click.echo(REFUSAL, err=True)
        sys.exit(REFUSED_EXIT)
