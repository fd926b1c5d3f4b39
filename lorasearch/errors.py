"""The one exception type for mistakes a user can make (bad flags, files, knobs).

The CLI catches it once and prints it as a single line with exit code 2; anything else is a bug
and keeps its traceback.
"""


class LorasearchError(Exception):
    """A user-caused problem, explained in one line."""


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ***: storage and tracking URLs are shown masked."""
    import re

    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def run_script(main) -> None:
    """Run a script's ``main`` (the benchmarks under bench/) the way the CLI runs a command: a
    user error becomes one line on stderr and exit code 2."""
    import sys
    from pathlib import Path

    try:
        main()
    except LorasearchError as exc:
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
