"""guichet.federation."""
