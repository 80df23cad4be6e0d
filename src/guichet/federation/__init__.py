"""guichet.federation: the sandbox identity federation, an OpenID Connect provider that
behaves like FranceConnect v2 (and, later, the provider's check of a federation token)."""
