"""Sign-up: each field's validation, SIRET, organisation created or joined, no enumeration."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from guichet.accounts.errors import FormInvalid
from guichet.accounts.models import Membership, PartnerRole, User
from guichet.accounts.service import AccountService
from guichet.habilitation.models import Organisation
from guichet.mail.outbox import Outbox
from tests.unit.accounts.conftest import SIRET, form


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"email": "pas-une-adresse"}, "email", "adresse électronique valide"),
        ({"email": "a@b"}, "email", "adresse électronique valide"),
        ({"display_name": "   "}, "display_name", "prénom et nom"),
        ({"password": "court"}, "password", "au moins 12 caractères"),
        ({"password": "x" * 257}, "password", "au plus 256"),
        ({"password": "camille.martin@mairie-exemple.fr"}, "password", "pas être votre adresse"),
        ({"password": "CAMILLE.MARTIN"}, "password", "pas être votre adresse"),
        ({"siret": "73282932000075"}, "siret", "clé de contrôle"),
        ({"siret": "1234"}, "siret", "14 chiffres"),
        ({"organisation_name": ""}, "organisation_name", "dénomination"),
        ({"role": "instructor"}, "role", "rôle"),
    ],
)
def test_each_field_is_checked(
    service: AccountService, overrides: dict[str, str], field: str, fragment: str
) -> None:
    with pytest.raises(FormInvalid) as caught:
        service.sign_up(form(**overrides))
    assert set(caught.value.errors) == {field}
    assert fragment in caught.value.errors[field]


def test_all_errors_are_reported_at_once(service: AccountService) -> None:
    with pytest.raises(FormInvalid) as caught:
        service.sign_up(form(email="x", password="short", siret="0", role=""))
    assert list(caught.value.errors) == ["email", "password", "siret", "role"]


def test_sign_up_creates_account_organisation_membership_and_mails_a_link(
    service: AccountService, session_factory: sessionmaker[Session], outbox: Outbox
) -> None:
    service.sign_up(form(siret="732 829 320 00074"))
    with session_factory() as s:
        user = s.scalars(select(User)).one()
        assert user.email == "Camille.Martin@mairie-exemple.fr"
        assert user.email_key == "camille.martin@mairie-exemple.fr"
        assert user.email_verified_at is None
        assert user.password_hash is not None
        assert user.password_hash.startswith("$argon2id$")
        membership = s.scalars(select(Membership)).one()
        assert membership.role is PartnerRole.APPLICANT
        assert s.get_one(Organisation, membership.organisation_id).siret == SIRET
    [mail] = outbox.list()
    assert mail.subject == "Confirmez votre adresse électronique"
    message = outbox.get(mail.id)
    assert message is not None
    assert "http://portail.test/verification-email?token=" in message.text


def test_nobody_joins_an_existing_organisation_by_signing_up(
    service: AccountService, session_factory: sessionmaker[Session], outbox: Outbox
) -> None:
    """Its members see its requests, habilitations and calls: joining needs an approval."""
    service.sign_up(form())
    # The same answer as any sign-up (no SIRET enumeration); the address is told by mail.
    service.sign_up(form(email="intrus@exemple.fr", role="technical_contact"))
    newest = outbox.list()[0]
    assert newest.to == "intrus@exemple.fr"
    assert newest.subject == "Votre organisation est déjà inscrite sur guichet"
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Organisation)) == 1
        assert s.scalar(select(func.count()).select_from(User)) == 1  # nothing half-made
        roles = sorted(m.role.value for m in s.scalars(select(Membership)))
        assert roles == ["applicant"]


def test_known_address_answers_the_same_and_mails_the_owner(
    service: AccountService, session_factory: sessionmaker[Session], outbox: Outbox
) -> None:
    service.sign_up(form())
    # Same address, other case: no error, no second account; the owner is told by mail.
    service.sign_up(form(email="CAMILLE.MARTIN@mairie-exemple.fr", display_name="Intrus"))
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 1
        assert s.scalars(select(User.display_name)).one() == "Camille Martin"
    newest = outbox.list()[0]
    assert newest.subject == "Vous avez déjà un compte guichet"
    message = outbox.get(newest.id)
    assert message is not None
    assert "token=" not in message.text
