"""The request's block models: lenient drafts that refuse stray keys, the stored shape kept,
the portal's form read by the models, and an API's own perimeter."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from guichet.errors import BadRequest
from guichet.habilitation.blocks import (
    PERIMETERS,
    Basics,
    Block,
    Contacts,
    Legal,
    Line,
    Perimeter,
    PersonalData,
    Production,
    RequestForm,
    Technical,
    model_of,
)
from tests.unit.habilitation.support import complete_data


class FakeForm:
    """A submitted form, as ``portal.requests.forms.PortalForm`` reads one."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def text(self, name: str, limit: int, *, multiline: bool) -> str:
        value = self.fields.get(name)
        return value[:limit] if isinstance(value, str) else ""

    def checked(self, name: str) -> bool:
        return self.fields.get(name) == "1"

    def values(self, name: str) -> list[str]:
        value = self.fields.get(name, [])
        return list(value) if isinstance(value, list) else [value]


def test_every_saved_block_keeps_its_stored_shape(cert_pem: str) -> None:
    for block, values in complete_data(cert_pem).items():
        model = model_of("impot_particulier", Block(block))
        assert model.draft(values).stored() == values


@pytest.mark.parametrize(
    ("block", "values", "field"),
    [
        (Block.BASICS, {"demarche": "QF", "couleur": "bleu"}, "basics.couleur"),
        (Block.CONTACTS, {"controller": {"name": "A", "phone": "01"}}, "contacts.controller.phone"),
        (Block.PERSONAL_DATA, {"retention_months": True}, "personal_data.retention_months"),
        (Block.PERIMETER, {"data_scopes": {"dgfip_rfr": 3}}, "perimeter.data_scopes.dgfip_rfr"),
    ],
)
def test_a_draft_refuses_an_unknown_key_or_a_wrong_type(
    block: Block, values: dict[str, Any], field: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        model_of("impot_particulier", block).draft(values)
    assert refused.value.field is not None
    assert refused.value.field.startswith(field)


def test_a_draft_may_be_incomplete_and_keeps_what_was_typed() -> None:
    months = PersonalData.draft({"retention_months": "douze"})
    assert months.stored() == {"retention_months": "douze"}
    assert Basics.draft({}).stored() == {}


def test_stored_data_is_read_leniently() -> None:
    form = RequestForm.read(
        "impot_particulier",
        {"basics": {"demarche": "QF", "ancien": 1}, "technical": {"ip_ranges": ["10.0.0.1", 2]}},
    )
    assert form.basics.stored() == {"demarche": "QF"}
    assert form.technical.ip_ranges == ["10.0.0.1"]
    assert form.legal.stored() == {}
    assert form.contacts.contact("dpo").given() is False


def test_the_form_is_read_in_the_shape_and_order_the_portal_stored() -> None:
    legal = Legal.from_form(FakeForm({"nature": " loi ", "reference": "L. 114-8", "url": ""}))
    assert list(legal.stored()) == [
        "nature",
        "reference",
        "url",
        "secrecy_derogation",
        "document_id",
        "local_authority",
    ]
    assert legal.stored()["nature"] == "loi"
    assert legal.stored()["local_authority"] is False
    perimeter = model_of("impot_particulier", Block.PERIMETER).from_form(
        FakeForm(
            {
                "data_scopes": ["dgfip_rfr", "pas_une_donnee"],
                "justification_dgfip_rfr": "Le QF.",
                "label_dgfip_rfr": "RFR",
                "access_modes": ["spi"],
                "year_scopes": [],
            }
        )
    )
    assert perimeter.stored() == {
        "data_scopes": {"dgfip_rfr": "Le QF."},
        "labels": {"dgfip_rfr": "RFR"},
        "access_modes": ["spi"],
        "year_scopes": [],
        "r11494_domain": "",
    }
    technical = Technical.from_form(
        FakeForm({"ip_ranges": "10.0.0.1\n\n 10.0.0.2 ", "volumetry_per_minute": "50", "x": "1"})
    )
    assert technical.ip_ranges == ["10.0.0.1", "10.0.0.2"]
    assert technical.volumetry_per_minute == 50
    assert technical.annual_files == ""
    contacts = Contacts.from_form(FakeForm({"controller_name": "Le maire"}))
    assert contacts.stored() == {
        "controller": {"name": "Le maire", "email": ""},
        "technical": {"name": "", "email": ""},
    }
    production = Production.from_form(
        FakeForm({"security_kind": "questionnaire", "questionnaire_date": "2026-01-02"})
    )
    assert production.stored()["questionnaire"] == {"document_id": "", "date": "2026-01-02"}
    assert list(production.stored()["homologation"]) == [
        "document_id",
        "authority",
        "signatory_name",
        "signatory_function",
        "start_date",
        "duration_months",
    ]


def test_an_api_brings_its_own_perimeter(monkeypatch: pytest.MonkeyPatch) -> None:
    class AccountsPerimeter(Perimeter):
        offered: ClassVar[frozenset[str]] = frozenset({"iban"})

        purpose: Line = None

    monkeypatch.setitem(PERIMETERS, "comptes", AccountsPerimeter)
    assert model_of("comptes", Block.PERIMETER) is AccountsPerimeter
    read = AccountsPerimeter.from_form(
        FakeForm({"data_scopes": ["iban"], "justification_iban": "Virer.", "purpose": "Aides"})
    )
    assert read.stored() == {
        "data_scopes": {"iban": "Virer."},
        "labels": {"iban": ""},
        "purpose": "Aides",
    }
    form = RequestForm.read("comptes", {"perimeter": read.stored()})
    assert isinstance(form.perimeter, AccountsPerimeter)
    assert form.perimeter.access_modes_chosen() == []
