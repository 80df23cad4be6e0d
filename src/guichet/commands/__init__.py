"""The sub-commands of ``guichet`` (``guichet.cli``), one module per domain they drive."""
