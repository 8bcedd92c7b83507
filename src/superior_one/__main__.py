"""Allow ``python -m superior_one``, the same as the ``superior-one`` command."""

from superior_one.cli import app

app()
