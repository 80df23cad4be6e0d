"""guichet.consumer."""
