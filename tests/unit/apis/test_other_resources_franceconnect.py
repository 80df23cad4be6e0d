"""The IR bill, IFI and principal housing-tax resources in FranceConnect mode: the citizen
of the federation token (from the real sandbox federation, in process), within what they
consented to."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from guichet.apis.impot_particulier.franceconnect import (
    FederationClientNotHabilitated,
    FederationScopeNotGranted,
)
from guichet.catalog.products import (
    DATA_SCOPE_LABELS,
    FACTURE_MEDIA_TYPE,
    IFI_MEDIA_TYPE,
    TH_MEDIA_TYPE,
)
from guichet.db import transaction
from guichet.errors import (
    AccessModeNotGranted,
    DataScopeNotGranted,
    NotFound,
    ParameterInvalid,
    YearNotGranted,
)
from guichet.federation.checktoken import FederationTokenMissing
from guichet.federation.consent import CATALOGUE_LABELS
from guichet.federation.scopes import DATA_SCOPES
from guichet.habilitation.models import Habilitation
from guichet.sandbox import personas
from tests.unit.apis.test_franceconnect_operations import Setup, fc_request
from tests.unit.federation.test_checktoken import IDENTITY, Federation, federation

__all__ = ["federation"]

N = 2026
YEARS = "dgfip_annee_n_moins_1 dgfip_annee_n_moins_2"
SCOPES = (
    "dgfip_rfr",
    "dgfip_ir_facture",
    "dgfip_ifi",
    "dgfip_locaux_th",
    "dgfip_adresse_th",
    "dgfip_redevables_th",
)
CONSENT = f"{IDENTITY} {' '.join(SCOPES)} {YEARS}"


def labelled(setup: Setup) -> Setup:
    """The habilitation with the partner's literal labels, as the portal requires them
    [003 annexe 1] (the consent page shows them)."""
    with transaction(setup.fed.session_factory) as session:
        session.execute(
            update(Habilitation)
            .where(Habilitation.id == setup.hab.id)
            .values(data_labels={s: DATA_SCOPE_LABELS[s] for s in SCOPES})
        )
    return setup


@pytest.fixture
def setup(federation: Federation) -> Setup:
    return labelled(Setup(federation, data_scopes=SCOPES, sp_scopes=CONSENT))


def test_the_catalogue_labels_every_data_scope_the_federation_knows() -> None:
    """The consent page's default labels are the catalogue's, new scopes included."""
    assert {s for s in DATA_SCOPES if s.startswith("dgfip_") and "annee" not in s} <= set(
        DATA_SCOPE_LABELS
    )
    assert dict(CATALOGUE_LABELS) == dict(DATA_SCOPE_LABELS)


def test_the_citizen_gets_their_bill(setup: Setup) -> None:
    token = setup.token(personas.DUBOIS.spi, CONSENT)
    result = setup.call("ir_factures_fc", token, annrev=N - 1)
    assert result.media_type == FACTURE_MEDIA_TYPE
    assert set(result.body) == {"rfr", "facture"}
    assert result.body["facture"][-1]["codeLigne"] == "RESTIT"
    assert setup.last_ctx.subject_spi == personas.DUBOIS.spi
    assert setup.last_ctx.data_scopes_returned == ["dgfip_ir_facture", "dgfip_rfr"]
    assert setup.last_ctx.habilitation is setup.hab  # the real one, for the journal


def test_the_citizen_gets_their_principal_residence(setup: Setup) -> None:
    token = setup.token(personas.DUBOIS.spi, CONSENT)
    result = setup.call("th_principale_fc", token, annrev=N - 1)
    assert result.media_type == TH_MEDIA_TYPE
    [situation] = result.body["situationsTH"]
    assert situation["libelleEdition1"] == "MME DUBOIS ANGELA CLAIRE LOUISE"
    assert situation["locaux"][0]["invariant"].startswith("107")


def test_ifi_of_the_citizen_and_its_404(setup: Setup) -> None:
    # The federation's test citizen filed her income but declares no IFI: not liable.
    token = setup.token(personas.DUBOIS.spi, CONSENT)
    result = setup.call("ifi_assiettes_fc", token, annrev=N - 1)
    assert result.media_type == IFI_MEDIA_TYPE
    assert result.body == {"indicateurIfiIsf": "N"}
    assert setup.last_ctx.data_scopes_returned == ["dgfip_ifi"]
    # Louis GARNIER does (the pivot finds him by his own identity).
    result = setup.call("ifi_assiettes_fc", setup.token(personas.FULL_1.spi, CONSENT), annrev=N - 1)
    assert result.body == {"indicateurIfiIsf": "O"}
    # Hugo FOURNIER has no IR situation in N-1 either: nothing to say.
    with pytest.raises(NotFound):
        setup.call("ifi_assiettes_fc", setup.token(personas.NO_N1.spi, CONSENT), annrev=N - 1)


def test_only_what_the_citizen_consented_leaves(setup: Setup) -> None:
    narrow = f"{IDENTITY} dgfip_rfr dgfip_ir_facture {YEARS}"
    token = setup.token(personas.DUBOIS.spi, narrow)
    # The habilitation's TH scopes were not consented: refused, not narrowed silently.
    with pytest.raises(FederationScopeNotGranted):
        setup.call("th_principale_fc", token, annrev=N - 1)
    body = setup.call("ir_factures_fc", token, annrev=N - 1).body
    assert set(body) == {"rfr", "facture"}
    without_year = setup.token(personas.DUBOIS.spi, f"{IDENTITY} {' '.join(SCOPES)}")
    with pytest.raises(FederationScopeNotGranted):
        setup.call("ir_factures_fc", without_year, annrev=N - 1)


def test_rights_are_checked_before_the_federation(federation: Federation) -> None:
    setup = Setup(federation, data_scopes=SCOPES, sp_scopes=CONSENT)
    with pytest.raises(YearNotGranted):
        setup.call("ifi_assiettes_fc", "token-not-checked", annrev=N - 3 - 1)
    with pytest.raises(FederationTokenMissing):
        setup.ops["th_principale_fc"].parse(fc_request(None, annrev=N - 1))
    with pytest.raises(ParameterInvalid):
        setup.ops["th_principale_fc"].parse(fc_request("t", annrev="20x5"))
    spi_only = Setup(federation, data_scopes=SCOPES, access_modes=("spi",), sp_scopes=CONSENT)
    with pytest.raises(AccessModeNotGranted):
        spi_only.call("ir_factures_fc", "t", annrev=N - 1)
    no_th = Setup(federation, data_scopes=("dgfip_rfr",), sp_scopes=CONSENT)
    with pytest.raises(DataScopeNotGranted):
        no_th.call("th_principale_fc", "t", annrev=N - 1)


def test_a_token_of_another_habilitations_client_is_refused(federation: Federation) -> None:
    ours = labelled(Setup(federation, data_scopes=SCOPES, sp_scopes=CONSENT))
    theirs = labelled(Setup(federation, data_scopes=SCOPES, sp_scopes=CONSENT))
    token = theirs.token(personas.DUBOIS.spi, CONSENT)
    with pytest.raises(FederationClientNotHabilitated):
        ours.call("ir_factures_fc", token, annrev=N - 1)
