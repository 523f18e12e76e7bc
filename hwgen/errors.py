"""User-facing errors: anything wrong with the input model or options.

The CLI turns a :class:`TwnError` into a one-paragraph message on stderr and
exit status 2. Internal bugs stay ordinary exceptions.
"""

__all__ = ["TwnError"]


class TwnError(Exception):
    """Bad input: the message names the node, the op, the reason and what is accepted."""
