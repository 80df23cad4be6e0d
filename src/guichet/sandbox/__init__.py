"""guichet.sandbox."""
