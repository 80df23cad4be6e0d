"""The account mails, in French: verification, already registered, reset, lock-out (after
wrong passwords or refused second factors), second factors reset by an administrator, an
invitation to join an organisation, the confirmation of a request contact's address."""

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


def organisation_already_registered(address: str, display_name: str) -> Mail:
    text = (
        f"Bonjour {display_name},\n\n"
        "Quelqu'un a demandé à créer un compte guichet avec votre adresse électronique, pour "
        "une organisation qui est déjà inscrite : aucun compte n'a été créé.\n\n"
        "Pour la rejoindre, demandez à son demandeur ou à son représentant légal de vous "
        "inviter depuis la page « Mon organisation » du portail ; vous recevrez un lien par "
        f"courriel pour créer votre compte.\n\n{IGNORE}{SIGNATURE}"
    )
    return Mail(
        to=address,
        subject="Votre organisation est déjà inscrite sur guichet",
        text=text,
        kind="accounts:organisation_already_registered",
        ref="sign_up",
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


def second_factor_locked_out(user: User, until: dt.datetime, reset_link: str) -> Mail:
    """After five refused second factors (DICP C4): the password was right, so the mail
    says to change it; it carries no code, seed nor link that signs in."""
    text = (
        f"Bonjour {user.display_name},\n\n"
        "Après cinq seconds facteurs refusés (code de votre application d'authentification, "
        "clé de sécurité ou code de secours), votre compte guichet est bloqué jusqu'au "
        f"{_paris(until)} (heure de Paris).\n\n"
        "Ces tentatives ont suivi la saisie de votre mot de passe correct. Si ce n'était pas "
        "vous, quelqu'un connaît sans doute votre mot de passe : choisissez-en un nouveau "
        f"dès maintenant :\n{reset_link}\n\n"
        "Si vous avez perdu votre application, votre clé et vos codes de secours, demandez à "
        "un administrateur du portail de réinitialiser votre second facteur."
        f"{SIGNATURE}"
    )
    return Mail(
        to=user.email,
        subject="Votre compte est bloqué après des seconds facteurs refusés",
        text=text,
        kind="accounts:second_factor_locked_out",
        ref=str(user.id),
    )


def second_factors_reset(user: User, sign_in_link: str) -> Mail:
    """An administrator removed the person's second factors (DICP C4): they enrol a new one
    at their next sign-in. No secret in it."""
    text = (
        f"Bonjour {user.display_name},\n\n"
        "À votre demande, un administrateur du portail guichet a réinitialisé votre second "
        "facteur : vos applications d'authentification, clés de sécurité et codes de secours "
        "ne fonctionnent plus, et vos sessions ont été fermées.\n\n"
        "À votre prochaine connexion, après votre mot de passe, vous enregistrerez un nouveau "
        f"second facteur :\n{sign_in_link}\n\n"
        "Si vous n'avez rien demandé, prévenez aussitôt le fournisseur de données et changez "
        f"votre mot de passe.{SIGNATURE}"
    )
    return Mail(
        to=user.email,
        subject="Votre second facteur a été réinitialisé",
        text=text,
        kind="accounts:second_factors_reset",
        ref=str(user.id),
    )


def invitation(
    address: str,
    organisation: str,
    role: str,
    inviter: str | None,
    link: str,
    expires_at: dt.datetime,
    ref: str,
) -> Mail:
    who = f"{inviter} vous invite" if inviter else "Le fournisseur de données vous invite"
    text = (
        "Bonjour,\n\n"
        f"{who} à rejoindre l'organisation « {organisation} » sur guichet, en tant que "
        f"{role.lower()}.\n\n"
        "Pour accepter, ouvrez ce lien : vous y créerez votre compte, ou vous vous connecterez "
        f"si vous en avez déjà un.\n\n{link}\n\n"
        f"Le lien est valable jusqu'au {_paris(expires_at)} (heure de Paris) et ne sert "
        "qu'une fois.\n\nSi vous ne connaissez pas cette organisation, ignorez ce message : "
        f"rien ne sera fait sans vous.{SIGNATURE}"
    )
    return Mail(
        to=address,
        subject=f"Invitation à rejoindre « {organisation} » sur guichet",
        text=text,
        kind="accounts:invitation",
        ref=ref,
    )


def contact_confirmation(
    address: str,
    organisation: str,
    role: str,
    link: str,
    expires_at: dt.datetime,
    ref: str,
) -> Mail:
    text = (
        "Bonjour,\n\n"
        f"L'organisation « {organisation} » vous désigne comme {role} dans une demande "
        "d'habilitation aux API de la DGFiP déposée sur guichet. Le fournisseur de données doit "
        "pouvoir vous joindre à cette adresse.\n\n"
        f"Pour la confirmer, ouvrez ce lien :\n\n{link}\n\n"
        f"Le lien est valable jusqu'au {_paris(expires_at)} (heure de Paris) et ne sert "
        "qu'une fois. Aucun compte n'est créé.\n\nSi vous ne connaissez pas cette "
        f"organisation, ignorez ce message : l'adresse restera non confirmée.{SIGNATURE}"
    )
    return Mail(
        to=address,
        subject="Confirmez votre adresse de contact",
        text=text,
        kind="accounts:contact_confirmation",
        ref=ref,
    )
