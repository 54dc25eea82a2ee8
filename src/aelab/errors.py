"""The one exception type that means "the user's input is wrong".

The CLI turns it into a one-line message and exit code 2; everything else is a bug and
keeps its traceback.
"""


class AelabError(Exception):
    """Bad input: a file, key or value the user gave. The message names it and the problem."""
