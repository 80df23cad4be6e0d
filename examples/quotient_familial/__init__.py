"""Ville de Démoville — quotient familial: an example partner app in FranceConnect mode."""
