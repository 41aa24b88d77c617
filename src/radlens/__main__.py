"""``python -m radlens``: the same as the ``radlens`` command."""

from radlens.cli.main import app

app()
