"""guichet.operations."""
