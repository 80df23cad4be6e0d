"""guichet.portal."""
