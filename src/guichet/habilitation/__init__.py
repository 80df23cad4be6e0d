"""Habilitations: the validated conventions that the gateway enforces."""
