"""``python -m guichet`` is the ``guichet`` command."""

from guichet.cli import main

main()
