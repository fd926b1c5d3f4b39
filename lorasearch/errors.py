"""The one exception type for mistakes a user can make (bad flags, files, knobs).

The CLI catches it once and prints it as a single line with exit code 2; anything else is a bug
and keeps its traceback.
"""


class LorasearchError(Exception):
    """A user-caused problem, explained in one line."""


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first non-empty line of ``exc``'s message (its type name when it has none): how a
    library's error is quoted in our one-line messages."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0].strip() if lines else type(exc).__name__
    return text[:limit] if limit else text


SQLITE_PREFIX = "sqlite:///"


def sqlite_path(url: str) -> str | None:
    """The file behind a ``sqlite:///`` URL, else None (a server, or another scheme)."""
    return url[len(SQLITE_PREFIX) :] if url.startswith(SQLITE_PREFIX) else None


def looks_like_path(source: str, suffixes: tuple[str, ...] = ()) -> bool:
    """Whether ``source`` names a local path rather than a hub id (``name`` or ``owner/name``):
    it starts like a path, has more than one slash, or ends in one of ``suffixes``."""
    return (
        source.startswith((".", "/", "~"))
        or source.count("/") > 1
        or (bool(suffixes) and source.lower().endswith(suffixes))
    )


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
