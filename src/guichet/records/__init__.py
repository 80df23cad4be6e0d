"""The provider's records (persons, tax situations), one store per environment."""
