"""The account mails, in French: verification, already registered, reset, lock-out."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from guichet.accounts.models import User
from guichet.mail import Mail

PARIS = ZoneInfo("Europe/Paris")
SIGNATURE = "\n\n-- \nguichet — les API de la DGFiP pour les partenaires habilités\n"
IGNORE = "Si vous n'êtes pas à l'origine de cette demande, ignorez ce message."


def _paris(moment: dt.datetime) -> str:
    return moment.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")


def verify_email(user: User, link: str, expires_at: dt.datetime) -> Mail:
    text = (
        f"Bonjour {user.display_name},\n\n"
        "Pour activer votre compte guichet, confirmez votre adresse électronique en ouvrant "
        f"ce lien :\n\n{link}\n\n"
        f"Le lien est valable jusqu'au {_paris(expires_at)} (heure de Paris) et ne sert "
        f"qu'une fois.\n\n{IGNORE}{SIGNATURE}"
    )
    return Mail(
        to=user.email,
        subject="Confirmez votre adresse électronique",
        text=text,
        kind="accounts:verify_email",
        ref=str(user.id),
    )


def already_registered(user: User, sign_in_link: str, reset_link: str) -> Mail:
    text = (
        f"Bonjour {user.display_name},\n\n"
        "Quelqu'un a demandé à créer un compte guichet avec votre adresse électronique, qui "
        "a déjà un compte.\n\n"
        f"Si c'était vous, connectez-vous :\n{sign_in_link}\n\n"
        f"ou choisissez un nouveau mot de passe :\n{reset_link}\n\n{IGNORE}{SIGNATURE}"
    )
    return Mail(
        to=user.email,
        subject="Vous avez déjà un compte guichet",
        text=text,
        kind="accounts:already_registered",
        ref=str(user.id),
    )


def reset_password(user: User, link: str, expires_at: dt.datetime) -> Mail:
    text = (
        f"Bonjour {user.display_name},\n\n"
        "Pour choisir un nouveau mot de passe, ouvrez ce lien :\n\n"
        f"{link}\n\n"
        f"Le lien est valable une heure, jusqu'au {_paris(expires_at)} (heure de Paris), et ne "
        f"sert qu'une fois.\n\n{IGNORE} Votre mot de passe actuel reste valable.{SIGNATURE}"
    )
    return Mail(
        to=user.email,
        subject="Réinitialisation de votre mot de passe",
        text=text,
        kind="accounts:reset_password",
        ref=str(user.id),
    )


def locked_out(user: User, until: dt.datetime, reset_link: str) -> Mail:
    text = (
        f"Bonjour {user.display_name},\n\n"
        "Après cinq tentatives de connexion échouées, votre compte guichet est bloqué "
        f"jusqu'au {_paris(until)} (heure de Paris).\n\n"
        "Si ce n'était pas vous, quelqu'un essaie peut-être de deviner votre mot de passe : "
        f"choisissez-en un nouveau :\n{reset_link}{SIGNATURE}"
    )
    return Mail(
        to=user.email,
        subject="Votre compte est temporairement bloqué",
        text=text,
        kind="accounts:locked_out",
        ref=str(user.id),
    )
