"""Password hashing (argon2id through ``argon2-cffi``) and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
# argon2 hashes any length; a bound keeps one request from costing more than it should.
MAX_LENGTH = 256


def password_problem(password: str, email: str) -> str | None:
    """Why ``password`` is refused, in French, or None: at least 12 characters, not the email."""
    if len(password) < MIN_LENGTH:
        return f"Le mot de passe doit comporter au moins {MIN_LENGTH} caractères."
    if len(password) > MAX_LENGTH:
        return f"Le mot de passe doit comporter au plus {MAX_LENGTH} caractères."
    folded = password.strip().casefold()
    address = email.strip().casefold()
    if folded and (folded == address or folded == address.partition("@")[0]):
        return "Le mot de passe ne doit pas être votre adresse électronique."
    return None


class Passwords:
    """Hashes and checks passwords; checking against no hash costs the same as a real check."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        # Unknown accounts are checked against this, so that their answer takes as long.
        self._dummy = self.hasher.hash("guichet: no such account")

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """True when ``password`` matches ``stored``; always does one full argon2 check."""
        try:
            return self.hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self.hasher.check_needs_rehash(stored)
