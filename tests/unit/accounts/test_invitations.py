"""Joining an organisation by invitation: who may invite, the single-use expiring link, the
invitee's new or existing account, cancellation, and the operator's command."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import NamedTuple

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from guichet.accounts.errors import (
    FormInvalid,
    InvitationForAnotherAccount,
    InvitationInvalid,
    LastInviter,
    MayNotInvite,
    OrganisationNotFound,
)
from guichet.accounts.models import Membership, OrganisationInvitation, PartnerRole, User
from guichet.accounts.organisations import INVITATION_LIFETIME, OrganisationService
from guichet.accounts.service import AccountService, create_user
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.habilitation.service import get_or_create_organisation
from guichet.mail.outbox import Outbox
from guichet.secrets import hash_secret
from guichet.settings import Settings, use_settings
from tests.unit.accounts.conftest import PASSWORD, SIRET, form, link_token

OTHER_SIRET = "21000000610001"


class People(NamedTuple):
    org_a: uuid.UUID
    org_b: uuid.UUID
    applicant: uuid.UUID  # A, may invite
    legal: uuid.UUID  # A, legal representative, may invite
    technical: uuid.UUID  # A, may not invite
    stranger: uuid.UUID  # B, applicant


@pytest.fixture
def people(session_factory: sessionmaker[Session], clock: FrozenClock) -> People:
    now = clock.now()
    with transaction(session_factory) as s:
        a = get_or_create_organisation(s, SIRET, "Commune A", now)
        b = get_or_create_organisation(s, OTHER_SIRET, "Commune B", now)
        made = []
        for address, org, role in [
            ("demandeur@a.fr", a, PartnerRole.APPLICANT),
            ("maire@a.fr", a, PartnerRole.LEGAL_REPRESENTATIVE),
            ("technique@a.fr", a, PartnerRole.TECHNICAL_CONTACT),
            ("demandeur@b.fr", b, PartnerRole.APPLICANT),
        ]:
            user = create_user(s, address, address, now, verified=True)
            s.add(Membership(user_id=user.id, organisation_id=org.id, role=role, created_at=now))
            made.append(user.id)
        return People(a.id, b.id, *made)


@pytest.fixture
def orgs(service: AccountService) -> OrganisationService:
    return OrganisationService(service)


def roles_of(
    session_factory: sessionmaker[Session], email: str, org: uuid.UUID
) -> set[PartnerRole]:
    with session_factory() as s:
        return set(
            s.scalars(
                select(Membership.role)
                .join(User, User.id == Membership.user_id)
                .where(User.email_key == email, Membership.organisation_id == org)
            )
        )


def test_an_invitee_creates_an_account_and_joins_with_the_role(
    orgs: OrganisationService,
    people: People,
    outbox: Outbox,
    session_factory: sessionmaker[Session],
) -> None:
    invited = orgs.invite(people.applicant, people.org_a, "DPO@A.fr", "dpo")
    mail = outbox.get(outbox.list()[0].id)
    assert mail is not None
    assert mail.entry.to == "DPO@a.fr"
    assert "Commune A" in mail.entry.subject
    assert "délégué à la protection des données" in mail.text
    token = link_token(outbox, "/invitation")
    assert invited.link.endswith(token)
    with session_factory() as s:
        row = s.scalars(select(OrganisationInvitation)).one()
        assert row.token_hash == hash_secret(token)  # only the hash is stored
        assert row.invited_by == people.applicant
    page = orgs.invitation(token)
    assert (page.organisation_name, page.email, page.has_account) == (
        "Commune A",
        "DPO@a.fr",
        False,
    )

    user_id = orgs.accept_with_new_account(token, "Dominique Petit", PASSWORD)
    with session_factory() as s:
        user = s.get_one(User, user_id)
        assert user.email_verified_at is not None  # the link proved the mailbox
    assert roles_of(session_factory, "dpo@a.fr", people.org_a) == {PartnerRole.DPO}
    # Single use.
    with pytest.raises(InvitationInvalid):
        orgs.invitation(token)
    with pytest.raises(InvitationInvalid):
        orgs.accept_with_new_account(token, "Quelqu'un d'autre", PASSWORD)
    members = orgs.organisations_of(people.applicant)[0].members
    assert ["Délégué à la protection des données"] in [m.roles for m in members]


def test_the_link_expires_after_seven_days(
    orgs: OrganisationService, people: People, outbox: Outbox, clock: FrozenClock
) -> None:
    orgs.invite(people.legal, people.org_a, "dpo@a.fr", "dpo")
    token = link_token(outbox, "/invitation")
    clock.advance(INVITATION_LIFETIME.total_seconds() - 1)
    orgs.invitation(token)
    clock.advance(1)
    with pytest.raises(InvitationInvalid):
        orgs.invitation(token)
    with pytest.raises(InvitationInvalid):
        orgs.accept_with_new_account(token, "Dominique Petit", PASSWORD)
    [view] = orgs.organisations_of(people.applicant)
    assert [i.expired for i in view.invitations] == [True]


@pytest.mark.parametrize("token", ["", "x", "a" * 500])
def test_unknown_links_are_refused(orgs: OrganisationService, token: str) -> None:
    with pytest.raises(InvitationInvalid):
        orgs.invitation(token)


def test_only_the_applicant_and_the_legal_representative_invite(
    orgs: OrganisationService, people: People
) -> None:
    orgs.invite(people.applicant, people.org_a, "un@a.fr", "technical_contact")
    orgs.invite(people.legal, people.org_a, "deux@a.fr", "applicant")
    with pytest.raises(MayNotInvite):
        orgs.invite(people.technical, people.org_a, "trois@a.fr", "dpo")


def test_an_organisation_founded_by_its_technical_contact_is_not_locked(
    orgs: OrganisationService,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    people: People,
) -> None:
    # Its founder signed up as the technical contact: with no applicant or legal
    # representative, every member invites, or nobody could ever join.
    now = clock.now()
    with transaction(session_factory) as s:
        c = get_or_create_organisation(s, "35600000000048", "Commune C", now)
        founder = create_user(s, "technique@c.fr", "technique@c.fr", now, verified=True)
        s.add(
            Membership(
                user_id=founder.id,
                organisation_id=c.id,
                role=PartnerRole.TECHNICAL_CONTACT,
                created_at=now,
            )
        )
        org_c = c.id
    assert orgs.organisations_of(founder.id)[0].may_invite
    orgs.invite(founder.id, org_c, "maire@c.fr", "legal_representative")
    # Organisation A has its applicant: its technical contact still may not.
    assert not next(o for o in orgs.organisations_of(people.technical)).may_invite
    with pytest.raises(OrganisationNotFound):
        orgs.invite(founder.id, people.org_a, "intrus@c.fr", "applicant")


def test_another_organisation_can_neither_invite_nor_see_nor_cancel(
    orgs: OrganisationService, people: People
) -> None:
    invited = orgs.invite(people.applicant, people.org_a, "dpo@a.fr", "dpo")
    with pytest.raises(OrganisationNotFound):
        orgs.invite(people.stranger, people.org_a, "intrus@b.fr", "applicant")
    with pytest.raises(OrganisationNotFound):
        orgs.cancel(people.stranger, invited.invitation_id)
    seen = orgs.organisations_of(people.stranger)
    assert [v.name for v in seen] == ["Commune B"]
    assert seen[0].invitations == []
    assert {m.email for m in seen[0].members} == {"demandeur@b.fr"}
    # The invitation is still there for A.
    assert [i.email for i in orgs.organisations_of(people.applicant)[0].invitations] == ["dpo@a.fr"]


def test_an_address_already_member_with_that_role_is_refused(
    orgs: OrganisationService, people: People, session_factory: sessionmaker[Session]
) -> None:
    with pytest.raises(FormInvalid) as refused:
        orgs.invite(people.applicant, people.org_a, "Technique@A.fr", "technical_contact")
    assert "déjà membre" in refused.value.errors["email"]
    # Another role for the same person is an invitation like any other.
    orgs.invite(people.applicant, people.org_a, "technique@a.fr", "dpo")
    # A member of B may be invited to A.
    orgs.invite(people.applicant, people.org_a, "demandeur@b.fr", "applicant")


@pytest.mark.parametrize(
    ("email", "role", "fields"),
    [
        ("dpo@a.fr", "administrator", ["role"]),
        ("dpo@a.fr", "", ["role"]),
        ("pas-une-adresse", "dpo", ["email"]),
        ("x" * 400 + "@a.fr", "dpo", ["email"]),
        ("", "chef", ["email", "role"]),
    ],
)
def test_bad_role_or_address(
    orgs: OrganisationService, people: People, email: str, role: str, fields: list[str]
) -> None:
    with pytest.raises(FormInvalid) as refused:
        orgs.invite(people.applicant, people.org_a, email, role)
    assert list(refused.value.errors) == fields


def test_inviting_again_replaces_the_earlier_link(
    orgs: OrganisationService, people: People, outbox: Outbox
) -> None:
    orgs.invite(people.applicant, people.org_a, "dpo@a.fr", "dpo")
    first = link_token(outbox, "/invitation")
    orgs.invite(people.applicant, people.org_a, "dpo@a.fr", "dpo")
    second = link_token(outbox, "/invitation")
    with pytest.raises(InvitationInvalid):
        orgs.invitation(first)
    orgs.invitation(second)
    assert len(orgs.organisations_of(people.applicant)[0].invitations) == 1


def test_a_cancelled_invitation_cannot_be_accepted(
    orgs: OrganisationService, people: People, outbox: Outbox
) -> None:
    invited = orgs.invite(people.applicant, people.org_a, "dpo@a.fr", "dpo")
    token = link_token(outbox, "/invitation")
    with pytest.raises(MayNotInvite):
        orgs.cancel(people.technical, invited.invitation_id)
    orgs.cancel(people.legal, invited.invitation_id)
    with pytest.raises(InvitationInvalid):
        orgs.accept_with_new_account(token, "Dominique Petit", PASSWORD)
    with pytest.raises(InvitationInvalid):
        orgs.cancel(people.applicant, invited.invitation_id)
    assert orgs.organisations_of(people.applicant)[0].invitations == []


def test_a_refused_form_does_not_spend_the_link(
    orgs: OrganisationService, people: People, outbox: Outbox
) -> None:
    orgs.invite(people.applicant, people.org_a, "dpo@a.fr", "dpo")
    token = link_token(outbox, "/invitation")
    with pytest.raises(FormInvalid) as refused:
        orgs.accept_with_new_account(token, "", "court")
    assert set(refused.value.errors) == {"display_name", "password"}
    orgs.accept_with_new_account(token, "Dominique Petit", PASSWORD)


def test_an_existing_account_accepts_once_signed_in(
    orgs: OrganisationService,
    people: People,
    outbox: Outbox,
    session_factory: sessionmaker[Session],
) -> None:
    orgs.invite(people.applicant, people.org_a, "demandeur@b.fr", "legal_representative")
    token = link_token(outbox, "/invitation")
    assert orgs.invitation(token).has_account
    # Creating a second account for the address is refused, and keeps the link.
    with pytest.raises(FormInvalid):
        orgs.accept_with_new_account(token, "Doublon", PASSWORD)
    # Another account cannot take it (it would verify nothing).
    with pytest.raises(InvitationForAnotherAccount):
        orgs.accept_as(token, people.technical)
    assert orgs.accept_as(token, people.stranger) == people.org_a
    assert roles_of(session_factory, "demandeur@b.fr", people.org_a) == {
        PartnerRole.LEGAL_REPRESENTATIVE
    }
    assert roles_of(session_factory, "demandeur@b.fr", people.org_b) == {PartnerRole.APPLICANT}
    with pytest.raises(InvitationInvalid):
        orgs.accept_as(token, people.stranger)


def test_accepting_verifies_an_unverified_account(
    service: AccountService,
    orgs: OrganisationService,
    people: People,
    outbox: Outbox,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    with transaction(session_factory) as s:
        user_id = create_user(s, "nouveau@a.fr", "Nouveau", clock.now()).id
    orgs.invite(people.applicant, people.org_a, "nouveau@a.fr", "dpo")
    orgs.accept_as(link_token(outbox, "/invitation"), user_id)
    with session_factory() as s:
        assert s.get_one(User, user_id).email_verified_at == clock.now()


def test_sign_up_of_a_known_siret_points_at_the_invitation(
    service: AccountService, people: People, outbox: Outbox
) -> None:
    # By mail to the address given, not on the page (issue 11: no SIRET enumeration).
    service.sign_up(form(siret=SIRET))
    mail = outbox.get(outbox.list()[0].id)
    assert mail is not None
    assert "inviter" in mail.text
    assert "Mon organisation" in mail.text


def test_the_operator_invites_by_siret(
    orgs: OrganisationService, people: People, outbox: Outbox
) -> None:
    invited = orgs.invite_by_siret("732 829 320 00074", "dpo@a.fr", "dpo")
    mail = outbox.get(outbox.list()[0].id)
    assert mail is not None
    assert "Le fournisseur de données vous invite" in mail.text
    assert orgs.organisations_of(people.applicant)[0].invitations[0].id == invited.invitation_id
    with pytest.raises(FormInvalid) as refused:
        orgs.invite_by_siret("73282932000082", "dpo@a.fr", "dpo")
    assert "siret" in refused.value.errors


def test_member_add_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: FrozenClock
) -> None:
    from guichet.commands.accounts import app
    from guichet.runtime import open_runtime

    monkeypatch.setenv("GUICHET_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("GUICHET_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    use_settings(Settings())
    try:
        runtime = open_runtime()
        with transaction(runtime.session_factory) as s:
            get_or_create_organisation(s, SIRET, "Commune A", dt.datetime.now(dt.UTC))
        runtime.close()
        runner = CliRunner()
        args = ["member", "add", "--siret", SIRET, "--email", "dpo@a.fr", "--role", "dpo"]
        done = runner.invoke(app, args)
        assert done.exit_code == 0, done.output
        assert "/invitation?token=" in done.stdout
        outbox = Outbox(tmp_path / "var" / "outbox")
        assert [m.to for m in outbox.list()] == ["dpo@a.fr"]
        bad = runner.invoke(app, [*args[:-1], "chef"])
        assert bad.exit_code == 2
        unknown = runner.invoke(app, ["member", "add", "--siret", OTHER_SIRET, *args[4:]])
        assert unknown.exit_code == 2
        assert "Aucune organisation" in unknown.stdout
        listed = runner.invoke(app, ["member", "list", "--siret", SIRET])
        assert listed.exit_code == 0
    finally:
        use_settings(None)


def test_an_inviter_removes_a_role_but_never_the_last_inviter(
    orgs: OrganisationService, people: People, session_factory: sessionmaker[Session]
) -> None:
    orgs.remove_role(people.applicant, people.org_a, people.technical, "technical_contact")
    assert roles_of(session_factory, "technique@a.fr", people.org_a) == set()
    assert "technique@a.fr" not in {
        m.email for m in orgs.organisations_of(people.applicant)[0].members
    }
    # The legal representative may go: the applicant still invites.
    orgs.remove_role(people.applicant, people.org_a, people.legal, "legal_representative")
    with pytest.raises(LastInviter):
        orgs.remove_role(people.applicant, people.org_a, people.applicant, "applicant")
    assert roles_of(session_factory, "demandeur@a.fr", people.org_a) == {PartnerRole.APPLICANT}


def test_removing_a_role_is_for_inviters_and_members_only(
    orgs: OrganisationService, people: People, session_factory: sessionmaker[Session]
) -> None:
    with pytest.raises(MayNotInvite):
        orgs.remove_role(people.technical, people.org_a, people.legal, "legal_representative")
    with pytest.raises(OrganisationNotFound):
        orgs.remove_role(people.stranger, people.org_a, people.technical, "technical_contact")
    with pytest.raises(OrganisationNotFound):  # a role the person does not hold, a bad role
        orgs.remove_role(people.applicant, people.org_a, people.technical, "dpo")
    with pytest.raises(OrganisationNotFound):
        orgs.remove_role(people.applicant, people.org_a, people.technical, "chef")
    # A member may give up their own role.
    orgs.remove_role(people.technical, people.org_a, people.technical, "technical_contact")
    assert roles_of(session_factory, "technique@a.fr", people.org_a) == set()
    assert roles_of(session_factory, "maire@a.fr", people.org_a) == {
        PartnerRole.LEGAL_REPRESENTATIVE
    }
