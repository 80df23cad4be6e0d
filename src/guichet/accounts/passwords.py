"""Password hashing (argon2id through ``argon2-cffi``) and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

MIN_LENGTH = 12
# argon2 hashes any length; a bound keeps one request from costing more than it should.
MAX_LENGTH = 256
# zxcvbn's scale: 3 is "safely unguessable: moderate protection from offline slow-hash
# attacks" (about 10^8 guesses and more); below, it is a common, leaked or patterned password.
MIN_SCORE = 3
# The estimator's cost grows with the length; the first characters say enough.
ESTIMATED_LENGTH = 72
# Words of this service an attacker would try first, beside the address's own parts.
SERVICE_WORDS = ("guichet", "dgfip", "impots", "finances", "motdepasse", "azerty", "bonjour")


def password_problem(password: str, email: str) -> str | None:
    """Why ``password`` is refused, in French, or None: 12 to 256 characters, not the email,
    not guessable (``too_guessable``)."""
    if len(password) < MIN_LENGTH:
        return f"Le mot de passe doit comporter au moins {MIN_LENGTH} caractères."
    if len(password) > MAX_LENGTH:
        return f"Le mot de passe doit comporter au plus {MAX_LENGTH} caractères."
    folded = password.strip().casefold()
    address = email.strip().casefold()
    if folded and (folded == address or folded == address.partition("@")[0]):
        return "Le mot de passe ne doit pas être votre adresse électronique."
    if too_guessable(password, address):
        return (
            "Ce mot de passe est trop facile à deviner (mot de passe courant ou déjà divulgué, "
            "suite de clavier, répétition, proche de votre adresse) : choisissez-en un plus "
            "long, par exemple quatre mots sans rapport entre eux."
        )
    return None


def too_guessable(password: str, address: str) -> bool:
    """zxcvbn's estimate (its dictionaries of common and leaked passwords, names, keyboard
    patterns, dates) is below ``MIN_SCORE``."""
    local, _, domain = address.partition("@")
    hints = [*SERVICE_WORDS, local, *local.replace("-", ".").split("."), *domain.split(".")]
    estimate = zxcvbn(password[:ESTIMATED_LENGTH], user_inputs=[h for h in hints if h])
    return int(estimate["score"]) < MIN_SCORE


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
