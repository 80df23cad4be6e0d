"""The one French vocabulary: every code a person may read has its words."""

from __future__ import annotations

import datetime as dt
import re

from guichet.catalog import vocabulary
from guichet.catalog.products import IR_DATA_SCOPES, PRODUCTS, YEAR_FALLBACK_SCOPE, YEAR_SCOPES
from guichet.habilitation.models import AccessMode, Environment
from guichet.habilitation.validation import Block, LegalNature

SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


def test_every_data_scope_has_a_theme_and_plain_words() -> None:
    themed = [s for t in vocabulary.THEMES for s in t.scopes]
    assert len(themed) == len(set(themed))
    assert set(themed) >= IR_DATA_SCOPES
    for scope in themed:
        name = vocabulary.scope_name(scope)
        assert name != scope
        assert not SNAKE.search(name)
        assert "dgfip" not in name
    assert vocabulary.PROVIDER_FIELDS["dgfip_rfr"] == ("rfr",)
    grouped = vocabulary.themes_of(["dgfip_nbpart", "dgfip_rfr", "dgfip_nouveau"])
    assert [(t.label, scopes) for t, scopes in grouped] == [
        ("Revenus", ["dgfip_rfr"]),
        ("Foyer fiscal", ["dgfip_nbpart"]),
        ("Autres données", ["dgfip_nouveau"]),
    ]


def test_years_name_the_actual_year_in_paris() -> None:
    # 31 December 23:30 UTC is already the next year in Paris.
    now = dt.datetime(2025, 12, 31, 23, 30, tzinfo=dt.UTC)
    assert vocabulary.year_name("dgfip_annee_n_moins_1", now) == "Revenus de l'année N-1 (2025)"
    for scope in [*YEAR_SCOPES, YEAR_FALLBACK_SCOPE]:
        assert not SNAKE.search(vocabulary.year_name(scope, now))


def test_codes_of_the_domain_all_have_words() -> None:
    assert {m.value for m in AccessMode} <= set(vocabulary.ACCESS_MODES)
    assert {e.value for e in Environment} <= set(vocabulary.ENVIRONMENTS)
    assert {n.value for n in LegalNature} <= set(vocabulary.LEGAL_NATURES)
    assert {b.value for b in Block} <= set(vocabulary.BLOCKS)
    assert vocabulary.ENVIRONMENTS["sandbox"] == "Bac à sable"


def test_request_fields_are_words_never_paths() -> None:
    assert vocabulary.field_name("contacts.controller.email") == (
        "Contacts — Adresse électronique du responsable de traitement"
    )
    assert vocabulary.field_name("basics.intended_use") == (
        "Informations générales — Usage prévu des données"
    )
    assert vocabulary.field_name("perimeter.data_scopes.dgfip_nbpart") == (
        "Périmètre des données — Justification : Nombre de parts du foyer fiscal"
    )
    assert vocabulary.field_name("reason") == "Motif de la décision"
    for path in [*vocabulary.REQUEST_FIELDS, "production.homologation.unknown_key"]:
        assert not SNAKE.search(vocabulary.field_name(path)), path
    assert vocabulary.field_value("perimeter.access_modes", ["spi"]) == ["Numéro fiscal (SPI)"]
    assert vocabulary.field_value("legal.nature", "deliberation") == (
        "Délibération du conseil (collectivité)"
    )


def test_operations_and_outcomes_are_sentences() -> None:
    assert vocabulary.operation_name("GET ir_assiettes_spi") == (
        "Situation d'impôt sur le revenu (par numéro fiscal)"
    )
    names = {op.name for p in PRODUCTS.values() for op in p.operations}
    for name in names:
        assert not SNAKE.search(vocabulary.operation_name(name)), name
    assert vocabulary.outcome_sentence("ok") == "Données transmises"
    assert vocabulary.outcome_sentence("year_not_granted") == (
        "Refusé : année de revenus non couverte par l'habilitation"
    )
    assert vocabulary.outcome_sentence("invalid_client").startswith("Refusé : ")
    assert vocabulary.outcome_sentence("never_heard_of") == "Refusé : motif technique"


def test_times_are_read_in_paris() -> None:
    summer = dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.UTC)
    assert vocabulary.datetime_words(summer) == "01/07/2026 à 12:00"
    winter = dt.datetime(2026, 12, 5, 8, 19, 7)  # naive: UTC, as the database keeps it
    assert vocabulary.datetime_words(winter, seconds=True) == "05/12/2026 à 09:19:07"
    assert vocabulary.date_words(dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC)) == "01/01/2027"
    assert vocabulary.date_words(None) == "—"
