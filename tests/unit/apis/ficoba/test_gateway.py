"""API FICOBA through the real gateway app, on each database: every operation and search type
answers the provider's shapes, every refusal is a ``ReponseErreur`` naming what is at fault,
and the journal names the search type and the persons by pseudonym only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from guichet.catalog.products import FICOBA_SEARCH_SCOPES
from guichet.catalog.vocabulary import FICOBA_SEARCH_TYPES
from guichet.db import transaction
from guichet.db.models import bump_generation
from guichet.oauth.models import Client
from guichet.pki import self_signed_certificate
from guichet.sandbox import ficoba as personas
from guichet.sandbox.ficoba import (
    GARNIER_SIREN,
    IBAN_MARTIN,
    MOREAU_EI_SIRET,
    TILLEULS_SIRET,
    UNKNOWN_SIREN,
)
from tests.conftest import BACKENDS
from tests.support.factories import Partner
from tests.unit.apis.ficoba.support import (
    FICOBA_SCOPES,
    call,
    closed_now,
    error_of,
    ficoba_partner,
    open_now,
)
from tests.unit.gateway.support import World, open_world

MARTIN_SPI = "3000000001250"  # Lucie MARTIN (docs/sandbox.md, ficoba-single)
BLANC_SPI = "3000000012261"  # Chloé BLANC, no account
LEFEVRE = {"nom": "Le-Fèvre", "prenoms": "sophie", "anneeNaissance": "1979"}
DEMANDE = {
    "dateDemande": "2026-01-15",
    "motif": "Contrôle",
    "siretDemandeur": "21690123100011",
    "justification": "Dossier 2026-001",
}


@pytest.fixture(scope="module", params=BACKENDS)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    postgres = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    with open_world(request.param, tmp_path_factory.mktemp("ficoba"), postgres) as world:
        yield world


@pytest.fixture
def world(shared: World) -> Iterator[World]:
    with shared.scoped():
        open_now(shared)
        yield shared


@pytest.fixture(scope="module")
def partner(shared: World) -> Partner:
    return ficoba_partner(shared)


def served(world: World, response: Any, search_type: str | None) -> dict[str, Any]:
    """A 200 in application/json, X-Request-ID echoed, journaled ``ok`` with the type."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] == "demande-0001"
    assert response.headers["ratelimit-policy"] == '"minute";q=200;w=60'
    record = world.record(response.headers["x-correlation-id"])
    assert record["outcome"] == "ok"
    assert record["api"] == "ficoba"
    assert record["search_type"] == search_type
    assert search_type is None or search_type in FICOBA_SEARCH_TYPES
    return record


def pseudonyms(world: World, *identifiers: str) -> set[str]:
    return {world.master.pseudonym(i) for i in identifiers}


def no_clear_identifier(record: dict[str, Any], *identifiers: str) -> None:
    flat = " ".join(str(v) for v in record.values())
    for identifier in identifiers:
        assert identifier not in flat


# --- each operation ----------------------------------------------------------------------------


def test_the_health_check_answers_the_provider_s_descriptif(world: World, partner: Partner) -> None:
    r = call(world, "/etatSante", method="GET", partner=partner, content_type=None)
    served(world, r, None)
    assert r.json() == {"descriptif": "L'API est opérationnelle"}


def test_search_by_spi_returns_the_person_and_accounts_journaled_by_pseudonym(
    world: World, partner: Partner
) -> None:
    body = {**DEMANDE, "criteresRecherche": {"numeroSPI": MARTIN_SPI}}
    r = call(world, "/comptes/spi", body, partner=partner)

    record = served(world, r, "spi")
    answer = r.json()
    assert answer["caracteristiquesDemande"] == DEMANDE
    assert answer["nombreReponses"] == "1"
    (found,) = answer["reponses"]
    assert found["personneRecherche"]["nomNaissance"] == "MARTIN"
    assert found["personneRecherche"]["numeroSpi"] == int(MARTIN_SPI)
    assert found["nombreComptes"] == str(len(found["comptes"])) == "4"
    assert record["subject"] == world.master.pseudonym(MARTIN_SPI)
    assert world.master.pseudonym(MARTIN_SPI) in record["subjects"]
    assert record["data_scopes"] == ["ficoba_comptes"]
    no_clear_identifier(record, MARTIN_SPI, "MARTIN")


def test_nothing_found_is_a_200_with_zero_answers_and_a_message(
    world: World, partner: Partner
) -> None:
    r = call(
        world, "/comptes/spi", {"criteresRecherche": {"numeroSPI": BLANC_SPI}}, partner=partner
    )

    record = served(world, r, "spi")
    answer = r.json()
    assert answer["nombreReponses"] == "0"
    assert answer["messageInformatif"]["code"] == "aucune_reponse"
    assert "reponses" not in answer
    assert "caracteristiquesDemande" not in answer
    assert record["data_scopes"] == []
    assert record["subjects"] == [world.master.pseudonym(BLANC_SPI)]


def test_search_by_account_returns_the_account_and_its_holders(
    world: World, partner: Partner
) -> None:
    r = call(
        world, "/comptes/numCpte", {"criteresRecherche": {"iban": IBAN_MARTIN}}, partner=partner
    )

    record = served(world, r, "compte")
    (account,) = r.json()["reponses"]["comptes"]
    assert account["caracteristiqueCompte"]["iban"] == IBAN_MARTIN
    assert world.master.pseudonym(MARTIN_SPI) in record["subjects"]
    no_clear_identifier(record, IBAN_MARTIN)


def test_search_by_siren_returns_every_establishment(world: World, partner: Partner) -> None:
    r = call(
        world,
        "/comptes/siretSiren",
        {"criteresRecherche": {"siren": GARNIER_SIREN}},
        partner=partner,
    )

    record = served(world, r, "siren_siret")
    answer = r.json()
    assert answer["nombreReponses"] == "2"
    assert {a["personneRecherche"]["siren"] for a in answer["reponses"]} == {GARNIER_SIREN}
    assert record["subject"] == world.master.pseudonym(GARNIER_SIREN)
    no_clear_identifier(record, GARNIER_SIREN)

    unknown = call(
        world,
        "/comptes/siretSiren",
        {"criteresRecherche": {"siren": UNKNOWN_SIREN}},
        partner=partner,
    )
    assert served(world, unknown, "siren_siret")["subjects"] is None
    assert unknown.json()["nombreReponses"] == "0"


def test_natural_person_search_ranks_by_score(world: World, partner: Partner) -> None:
    r = call(
        world, "/comptes/perPhy", {"criteresRecherche": {"etatCivil": LEFEVRE}}, partner=partner
    )

    record = served(world, r, "personne_physique")
    best = r.json()["reponses"][0]["personneRecherche"]
    assert best["nomNaissance"] == "LEFEVRE"
    assert best["scoreAppariement"] >= 50
    assert record["subjects"]
    no_clear_identifier(record, "LEFEVRE", "Le-Fèvre")


def test_legal_person_search_by_designation(world: World, partner: Partner) -> None:
    body = {"criteresRecherche": {"designation": {"raisonSociale": "Garnier & Fils"}}}
    r = call(world, "/comptes/perPro", body, partner=partner)

    record = served(world, r, "personne_morale")
    assert r.json()["reponses"][0]["personneRecherche"]["siren"] == GARNIER_SIREN
    assert world.master.pseudonym(GARNIER_SIREN) in record["subjects"]


@pytest.mark.parametrize(
    ("criteres", "search_type", "code", "count"),
    [
        (
            {
                "recherchePP": "O",
                "iban": IBAN_MARTIN,
                "etatCivil": {"nom": "Martin", "prenoms": "Lucie", "anneeNaissance": "1990"},
            },
            "verification_iban_personne_physique",
            "titulaire_concordant",
            "1",
        ),
        (
            {"recherchePP": "O", "iban": IBAN_MARTIN, "etatCivil": {"nom": "Dupont"}},
            "verification_iban_personne_physique",
            "titulaire_non_concordant",
            "0",
        ),
        (
            {
                "recherchePM": "O",
                "iban": personas.IBAN_TILLEULS,
                "designation": {"raisonSociale": "Association sportive des Tilleuls"},
            },
            "verification_iban_personne_morale",
            "titulaire_concordant",
            "1",
        ),
        (
            {"rechercheSirenSiret": "O", "iban": personas.IBAN_MOREAU_EI, "siret": MOREAU_EI_SIRET},
            "verification_iban_siret",
            "titulaire_concordant",
            "1",
        ),
    ],
)
def test_iban_checks_say_whether_the_holder_concords(
    world: World,
    partner: Partner,
    criteres: dict[str, Any],
    search_type: str,
    code: str,
    count: str,
) -> None:
    r = call(world, "/comptes/verifIban", {"criteresRecherche": criteres}, partner=partner)

    record = served(world, r, search_type)
    answer = r.json()
    assert answer["nombreReponses"] == count
    assert answer["messageInformatif"]["code"] == code
    assert answer["reponses"] == {"verificationCompte": {"ibanExistant": "O"}}
    assert record["data_scopes"] == ["ficoba_verification_iban"]
    assert record["subjects"]


@pytest.mark.parametrize(
    ("criteres", "search_type", "count"),
    [
        (
            {
                "recherchePP": "O",
                "codeNatureCompte": "3",
                "criteresRecherchePhy": {
                    "etatCivil": {
                        "nom": "Lefevre",
                        "prenoms": "Sophie",
                        "anneeNaissance": "1979",
                        "moisNaissance": "01",
                        "jourNaissance": "30",
                    }
                },
            },
            "multi_detention_personne_physique",
            2,
        ),
        (
            {
                "recherchePM": "O",
                "codeNatureCompte": "3",
                "criteresRecherchePro": {
                    "designation": {"raisonSociale": "Association sportive des Tilleuls"}
                },
            },
            "multi_detention_personne_morale",
            2,
        ),
        (
            {
                "rechercheSIRENSIRET": "O",
                "accordClient": "O",
                "codeNatureCompte": "3",
                "criteresSiretSiren": {"siret": TILLEULS_SIRET},
            },
            "multi_detention_siret",
            2,
        ),
    ],
)
def test_multi_holding_lists_the_open_accounts_of_a_nature(
    world: World, partner: Partner, criteres: dict[str, Any], search_type: str, count: int
) -> None:
    r = call(world, "/comptes/multiDet", {"criteresRecherche": criteres}, partner=partner)

    record = served(world, r, search_type)
    answer = r.json()
    assert answer["getnRep"] == answer["nombreReponses"] == str(count)
    assert [c["nature"] for c in answer["comptes"]] == ["3"] * count
    assert record["data_scopes"] == ["ficoba_multi_detention"]


# --- refusals ----------------------------------------------------------------------------------


def refused(world: World, response: Any, status: int, code: str) -> dict[str, Any]:
    body = error_of(response, status, code)
    record = world.record(response.headers["x-correlation-id"])
    assert record["outcome"] == code
    assert record["http_status"] == status
    assert record["data_scopes"] == []
    return body


def test_invalid_json_is_a_400(world: World, partner: Partner) -> None:
    r = call(world, "/comptes/spi", partner=partner, content=b'{"criteresRecherche": ')
    assert "JSON" in refused(world, r, 400, "body_invalid")["message"]


def test_another_media_type_is_a_415(world: World, partner: Partner) -> None:
    r = call(
        world,
        "/comptes/spi",
        partner=partner,
        content=b"numeroSPI=3000000001250",
        content_type="application/x-www-form-urlencoded",
    )
    refused(world, r, 415, "unsupported_media_type")


def test_a_body_beyond_the_operation_s_limit_is_a_413(world: World, partner: Partner) -> None:
    body = {"justification": "x" * 20_000, "criteresRecherche": {"numeroSPI": MARTIN_SPI}}
    r = call(world, "/comptes/spi", body, partner=partner)
    refused(world, r, 413, "payload_too_large")


def test_a_body_beyond_the_edge_s_limit_is_a_413_in_the_same_shape(
    world: World, partner: Partner
) -> None:
    body = {"justification": "x" * 70_000, "criteresRecherche": {"numeroSPI": MARTIN_SPI}}
    r = call(world, "/comptes/spi", body, partner=partner)
    error_of(r, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("path", "body", "field", "search_type"),
    [
        ("/comptes/spi", {}, "criteresRecherche", "spi"),
        (
            "/comptes/spi",
            {"criteresRecherche": {"numeroSPI": "123"}},
            "criteresRecherche.numeroSPI",
            "spi",
        ),
        (
            "/comptes/perPhy",
            {"criteresRecherche": {"etatCivil": {}}},
            "criteresRecherche.etatCivil.nom",
            "personne_physique",
        ),
        (
            "/comptes/perPhy",
            {
                "criteresRecherche": {
                    "etatCivil": {"nom": "Martin", "moisNaissance": "13", "anneeNaissance": "1990"}
                }
            },
            "criteresRecherche.etatCivil.moisNaissance",
            "personne_physique",
        ),
        (
            "/comptes/perPro",
            {"criteresRecherche": {"designation": {}}},
            "criteresRecherche.designation.raisonSociale",
            "personne_morale",
        ),
        (
            "/comptes/numCpte",
            {"criteresRecherche": {"iban": "FR7600000000000000000000001"}},
            "criteresRecherche.iban",
            "compte",
        ),
        (
            "/comptes/siretSiren",
            {"criteresRecherche": {}},
            "criteresRecherche.siret",
            "siren_siret",
        ),
        # Two indicators: the type cannot be known.
        (
            "/comptes/verifIban",
            {"criteresRecherche": {"recherchePP": "O", "recherchePM": "O", "iban": IBAN_MARTIN}},
            "criteresRecherche.recherchePM",
            None,
        ),
        # One indicator: the type is known even though its criteria are not.
        (
            "/comptes/verifIban",
            {"criteresRecherche": {"recherchePM": "O", "iban": "FR76"}},
            "criteresRecherche.iban",
            "verification_iban_personne_morale",
        ),
        (
            "/comptes/multiDet",
            {"criteresRecherche": {"recherchePP": "O", "criteresRecherchePhy": "Martin"}},
            "criteresRecherche.criteresRecherchePhy",
            "multi_detention_personne_physique",
        ),
        (
            "/comptes/spi",
            {"dateDemande": "15/01/2026", "criteresRecherche": {"numeroSPI": MARTIN_SPI}},
            "dateDemande",
            "spi",
        ),
        ("/comptes/spi", [1, 2], None, "spi"),
    ],
)
def test_a_missing_or_invalid_member_is_a_400_naming_it(
    world: World,
    partner: Partner,
    path: str,
    body: Any,
    field: str | None,
    search_type: str | None,
) -> None:
    r = call(world, path, body, partner=partner)
    error = error_of(r, 400, r.json()["code"])
    assert error["code"] in ("parameter_invalid", "spi_invalid")
    assert error.get("champ") == field
    if field:
        assert error["message"].startswith(f"{field} : ")
    record = world.record(r.headers["x-correlation-id"])
    assert record["subject"] is None
    assert record["subjects"] is None
    # The journal keeps the search type whenever the path or the body's indicator gives it.
    assert record["search_type"] == search_type


def test_invalid_json_on_a_typed_path_is_journaled_with_its_type(
    world: World, partner: Partner
) -> None:
    r = call(world, "/comptes/perPro", partner=partner, content=b"{")
    refused(world, r, 400, "body_invalid")
    assert world.record(r.headers["x-correlation-id"])["search_type"] == "personne_morale"
    r = call(world, "/comptes/multiDet", partner=partner, content=b"{")
    refused(world, r, 400, "body_invalid")
    assert world.record(r.headers["x-correlation-id"])["search_type"] is None


@pytest.mark.parametrize("missing", ["X-Request-ID", "X-Correlation-ID"])
def test_the_provider_s_headers_are_required(world: World, partner: Partner, missing: str) -> None:
    body = {"criteresRecherche": {"numeroSPI": MARTIN_SPI}}
    if missing == "X-Request-ID":
        r = call(world, "/comptes/spi", body, partner=partner, request_id=None)
        assert refused(world, r, 400, "header_missing")["champ"] == "X-Request-ID"
    else:
        r = call(world, "/comptes/spi", body, partner=partner, headers={"X-Correlation-ID": ""})
        error_of(r, 400, "correlation_id_invalid")
    health = call(world, "/etatSante", method="GET", partner=partner, request_id=None)
    error_of(health, 400, "header_missing")


def test_get_on_a_search_is_a_405_allowing_post(world: World, partner: Partner) -> None:
    r = call(world, "/comptes/spi", method="GET", partner=partner)
    refused(world, r, 405, "method_not_allowed")
    assert r.headers["allow"] == "POST"


def test_no_token_is_a_401_in_the_provider_s_shape(world: World, partner: Partner) -> None:
    r = call(world, "/comptes/spi", {"criteresRecherche": {"numeroSPI": MARTIN_SPI}}, partner=None)
    error_of(r, 401, "certificate_missing")


def test_the_closed_hour_is_a_503_with_retry_after_health_check_included(
    world: World, partner: Partner
) -> None:
    moment = closed_now(world)
    token = world.token(partner)
    body = {"criteresRecherche": {"numeroSPI": MARTIN_SPI}}

    r = call(world, "/comptes/spi", body, partner=partner, token=token)
    error = refused(world, r, 503, "service_closed")
    assert "03 h à 04 h" in error["message"]
    assert int(r.headers["retry-after"]) == 40 * 60
    assert world.record(r.headers["x-correlation-id"])["at"].replace(tzinfo=None) == moment.replace(
        tzinfo=None
    )

    health = call(world, "/etatSante", method="GET", partner=partner, token=token)
    assert health.status_code == 503
    assert set(health.json()) == {"erreur"}
    assert set(health.json()["erreur"]) == {"code", "message", "horodatage"}
    assert health.json()["erreur"]["code"] == "service_closed"
    assert int(health.headers["retry-after"]) == 40 * 60


def test_the_quota_is_200_a_minute_by_default_and_per_habilitation(world: World) -> None:
    limited = ficoba_partner(world, quotas={"ficoba": 2})
    token = world.token(limited)
    body = {"criteresRecherche": {"numeroSPI": MARTIN_SPI}}
    calls = [call(world, "/comptes/spi", body, partner=limited, token=token) for _ in range(3)]

    assert [c.status_code for c in calls[:2]] == [200, 200]
    refused(world, calls[2], 429, "quota_exceeded")
    assert int(calls[2].headers["retry-after"]) >= 1


def test_an_ip_partner_without_ficoba_is_refused(world: World) -> None:
    other = world.partner()
    r = call(world, "/comptes/spi", {"criteresRecherche": {"numeroSPI": MARTIN_SPI}}, partner=other)
    assert r.status_code == 403
    assert r.json()["code"] in ("api_not_subscribed", "scope_not_granted")


def test_a_self_signed_certificate_is_refused_even_pinned(world: World) -> None:
    """DICP C4: API FICOBA takes no self-signed certificate, whatever the habilitation says
    (one validated before the rule, here: the request form refuses it now)."""
    pinned = self_signed_certificate("Partenaire auto-signé", 30, world.clock.now())
    partner = world.partner(certificate=pinned)
    world.change_habilitation(partner, apis=["impot_particulier", "r2p", "ficoba"])
    with transaction(world.runtime.session_factory) as session:
        client = session.scalar(select(Client).where(Client.client_id == partner.client_id))
        assert client is not None
        client.scopes = [*client.scopes, *FICOBA_SCOPES]
        bump_generation(session)
    world.reload()

    r = call(
        world, "/comptes/spi", {"criteresRecherche": {"numeroSPI": MARTIN_SPI}}, partner=partner
    )
    assert "autosigné" in refused(world, r, 401, "certificate_untrusted")["message"]
    # The other APIs keep taking it.
    assert world.get(
        "/r2p/v1/personne/3000000001250", token=world.token(partner), cert=partner.cert_pem
    ).status_code in (200, 404)


# --- rights per search type [002 §4] ----------------------------------------------------------

PERSONNE_PHYSIQUE = {"criteresRecherche": {"etatCivil": LEFEVRE}}
PERSONNE_MORALE = {"criteresRecherche": {"designation": {"raisonSociale": "Garnier & Fils"}}}
SPI = {"criteresRecherche": {"numeroSPI": MARTIN_SPI}}
VERIF_PP = {
    "criteresRecherche": {
        "recherchePP": "O",
        "iban": IBAN_MARTIN,
        "etatCivil": {"nom": "Martin", "prenoms": "Lucie", "anneeNaissance": "1990"},
    }
}
VERIF_PM = {
    "criteresRecherche": {
        "recherchePM": "O",
        "iban": personas.IBAN_TILLEULS,
        "designation": {"raisonSociale": "Association sportive des Tilleuls"},
    }
}
VERIF_SIRET = {
    "criteresRecherche": {
        "rechercheSirenSiret": "O",
        "iban": personas.IBAN_MOREAU_EI,
        "siret": MOREAU_EI_SIRET,
    }
}
MULTI_SIRET = {
    "criteresRecherche": {
        "rechercheSIRENSIRET": "O",
        "accordClient": "O",
        "codeNatureCompte": "3",
        "criteresSiretSiren": {"siret": TILLEULS_SIRET},
    }
}
MULTI_PP = {
    "criteresRecherche": {
        "recherchePP": "O",
        "criteresRecherchePhy": {"etatCivil": LEFEVRE},
    }
}
MULTI_PM = {
    "criteresRecherche": {
        "recherchePM": "O",
        "criteresRecherchePro": {
            "designation": {"raisonSociale": "Association sportive des Tilleuls"}
        },
    }
}


def habilitated_for(world: World, *kinds: str) -> Partner:
    """A FICOBA partner the instructor habilitated for these search types only."""
    return ficoba_partner(world, data_scopes=tuple(FICOBA_SEARCH_SCOPES[k] for k in kinds))


def not_granted(world: World, response: Any, search_type: str) -> None:
    """403 in the provider's ``ReponseErreur``, naming the type in words; journaled with it."""
    body = refused(world, response, 403, "search_type_not_granted")
    assert f"« {FICOBA_SEARCH_TYPES[search_type]} »" in body["message"]
    assert world.record(response.headers["x-correlation-id"])["search_type"] == search_type


@pytest.mark.parametrize(
    ("granted", "allowed", "others"),
    [
        # The five searches that release accounts.
        (
            "personne_physique",
            ("/comptes/perPhy", PERSONNE_PHYSIQUE),
            [
                ("/comptes/perPro", PERSONNE_MORALE, "personne_morale"),
                ("/comptes/spi", SPI, "spi"),
                ("/comptes/numCpte", {"criteresRecherche": {"iban": IBAN_MARTIN}}, "compte"),
                (
                    "/comptes/siretSiren",
                    {"criteresRecherche": {"siren": GARNIER_SIREN}},
                    "siren_siret",
                ),
            ],
        ),
        # The three IBAN checks of one operation, chosen by the body's indicator.
        (
            "verification_iban_personne_physique",
            ("/comptes/verifIban", VERIF_PP),
            [
                ("/comptes/verifIban", VERIF_PM, "verification_iban_personne_morale"),
                ("/comptes/verifIban", VERIF_SIRET, "verification_iban_siret"),
                ("/comptes/perPhy", PERSONNE_PHYSIQUE, "personne_physique"),
            ],
        ),
        # The three multi-holding searches of one operation.
        (
            "multi_detention_siret",
            ("/comptes/multiDet", MULTI_SIRET),
            [
                ("/comptes/multiDet", MULTI_PP, "multi_detention_personne_physique"),
                ("/comptes/multiDet", MULTI_PM, "multi_detention_personne_morale"),
                (
                    "/comptes/siretSiren",
                    {"criteresRecherche": {"siret": TILLEULS_SIRET}},
                    "siren_siret",
                ),
            ],
        ),
    ],
)
def test_a_partner_habilitated_for_one_search_type_cannot_search_another(
    world: World,
    granted: str,
    allowed: tuple[str, dict[str, Any]],
    others: list[tuple[str, dict[str, Any], str]],
) -> None:
    partner = habilitated_for(world, granted)
    token = world.token(partner)

    served(world, call(world, *allowed, partner=partner, token=token), granted)
    for path, body, kind in others:
        not_granted(world, call(world, path, body, partner=partner, token=token), kind)


def test_a_refused_spi_search_is_still_journaled_about_the_person(world: World) -> None:
    partner = habilitated_for(world, "compte")
    r = call(world, "/comptes/spi", SPI, partner=partner)
    not_granted(world, r, "spi")
    assert world.record(r.headers["x-correlation-id"])["subjects"] == [
        world.master.pseudonym(MARTIN_SPI)
    ]


def test_a_habilitation_with_the_shared_scopes_of_old_grants_nothing(world: World) -> None:
    """Before migration 0019 a habilitation held ``ficoba_comptes``: it is no right now."""
    partner = habilitated_for(world, "compte")
    world.change_habilitation(partner, data_scopes=["ficoba_comptes"])
    not_granted(world, call(world, "/comptes/spi", SPI, partner=partner), "spi")
