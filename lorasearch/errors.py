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
