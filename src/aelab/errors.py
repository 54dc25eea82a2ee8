"""The one exception type that means "the user's input is wrong".

The CLI turns it into a one-line message and exit code 2; everything else is a bug and
keeps its traceback.
"""


class AelabError(Exception):
    """Bad input: a file, key or value the user gave. The message names it and the problem."""


def pick(table: dict, key: str, name: str):
    """`table[name]`, or the one-line error naming the key and the valid names."""
    try:
        return table[name]
    except KeyError:
        raise AelabError(f"{key}: unknown {name!r}; choose from {', '.join(table)}") from None
