"""The sandbox's bank file: deterministic, valid identifiers (python-stdnum), coherent
holdings, every Impôt Particulier person found by SPI, the personas as docs/sandbox.md
says, and written by ``guichet sandbox seed``."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from stdnum import bic, iban
from stdnum.fr import siren, siret

from guichet.records.ficoba import (
    NATURE_COFFRE,
    NATURES,
    NATURES_REGLEMENTEES,
    QUALITES,
    FicobaCompte,
    FicobaDetention,
    FicobaPersonneMorale,
    FicobaPersonnePhysique,
)
from guichet.records.models import Person
from guichet.sandbox import ficoba
from guichet.sandbox import personas as ir
from guichet.sandbox.population import generate_population, seed

YEAR = 2026
DOCS = Path(__file__).resolve().parents[3] / "docs" / "sandbox.md"


def _file(households: int, seed: int = 2026) -> ficoba.BankFile:
    population = generate_population(
        households=households, seed=seed, reference_year=YEAR, store="sandbox"
    )
    return ficoba.generate_bank_file(
        population.persons,
        seed=seed,
        reference_year=YEAR,
        store="sandbox",
        spouses=ficoba.couples(population.situations),
    )


def _digest(bank_file: ficoba.BankFile) -> str:
    rows = [getattr(bank_file, name) for _model, name in ficoba.TABLES]
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


def test_same_inputs_same_rows_and_personas_fixed_whatever_the_seed() -> None:
    a, b, c = _file(300), _file(300), _file(300, seed=8)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)

    def persona_ibans(f: ficoba.BankFile) -> set[str]:
        return {r["iban"] for r in f.comptes if r["iban"] and r["numero"].startswith("9")}

    assert persona_ibans(a) == persona_ibans(c)
    assert ficoba.IBAN_MARTIN in persona_ibans(a)


def test_identifiers_are_valid_and_unique() -> None:
    f = _file(1_000)
    ibans = [r["iban"] for r in f.comptes if r["iban"] is not None]
    assert len(ibans) == len(set(ibans))
    assert all(iban.is_valid(x) and x.startswith("FR") and len(x) == 27 for x in ibans)
    assert all(bic.is_valid(r["bic"]) and r["bic"][7] == "0" for r in f.etablissements)  # test BICs
    sirets = [r["siret"] for r in f.personnes_morales]
    assert len(sirets) == len(set(sirets))
    assert all(siret.is_valid(x) and siren.is_valid(x[:9]) for x in sirets)
    numbers = [(r["etablissement"], r["guichet"], r["numero"]) for r in f.comptes]
    assert len(numbers) == len(set(numbers))
    branches = {(g["etablissement"], g["code"]) for g in f.guichets}
    assert all((r["etablissement"], r["guichet"]) in branches for r in f.comptes)


def test_holdings_are_coherent() -> None:
    f = _file(1_000)
    pp = {r["id"] for r in f.personnes_physiques}
    pm = {r["id"] for r in f.personnes_morales}
    accounts = {r["id"]: r for r in f.comptes}
    holders: Counter[int] = Counter()
    co_holders: Counter[int] = Counter()
    for d in f.detentions:
        assert (d["personne_physique_id"] is None) != (d["personne_morale_id"] is None)
        assert d["personne_physique_id"] in pp or d["personne_morale_id"] in pm
        assert d["compte_id"] in accounts
        assert d["qualite"] in QUALITES
        holders[d["compte_id"]] += d["qualite"] == "TIT"
        co_holders[d["compte_id"]] += d["qualite"] == "COT"
    for cid, account in accounts.items():
        assert holders[cid] == 1
        assert (account["type"] == 2) == (co_holders[cid] > 0)
        assert account["nature"] in NATURES
        assert (account["iban"] is None) == (account["nature"] == NATURE_COFFRE)
        assert account["date_fiscale"] >= account["date_ouverture"]
        closed = account["date_cloture"]
        assert closed is None or account["date_ouverture"] < closed <= dt.date(YEAR - 1, 12, 31)
        assert (closed is None) == (account["motif_cloture"] is None)
    natures = Counter(r["nature"] for r in f.comptes)
    # Every kind of account, box and capacity the searches answer with is there.
    assert set(natures) == set(NATURES)
    assert set(Counter(d["qualite"] for d in f.detentions)) == set(QUALITES) - {"RPL"}
    deceased = [r for r in f.personnes_physiques if r["date_deces"] is not None]
    assert len(deceased) > 1
    assert any(r["succession"] for r in f.comptes)
    assert len(f.personnes_morales) > 50


def test_no_generated_legal_person_takes_a_persona_s_name() -> None:
    f = _file(3_000)
    generated = [r for r in f.personnes_morales if not r["siren"].startswith("9")]
    assert len(generated) > 150
    assert not {r["raison_sociale_cle"] for r in generated} & {"GARNIER FILS", "MOREAU JULIEN"}
    assert not {r["sigle_cle"] for r in generated} & {"GEF", "AST"}
    assert "ASSOCIATION SPORTIVE TILLEULS" not in {r["raison_sociale_cle"] for r in generated}


def test_every_tax_person_but_one_has_accounts_by_spi() -> None:
    population = generate_population(households=200, seed=3, reference_year=YEAR, store="s")
    f = ficoba.generate_bank_file(
        population.persons, seed=3, reference_year=YEAR, store="s",
        spouses=ficoba.couples(population.situations),
    )  # fmt: skip
    by_spi = {r["spi"]: r for r in f.personnes_physiques if r["spi"]}
    held = {d["personne_physique_id"] for d in f.detentions}
    for person in population.persons:
        if person["spi"] == ir.NO_TAX.spi:
            assert person["spi"] not in by_spi  # Chloé BLANC: no account
            continue
        row = by_spi.get(person["spi"])
        if row is None:
            assert person["spi"] not in ir.PERSONA_SPIS  # a generated person without account
            continue
        assert row["nom_naissance"] == person["nom_naissance"]
        assert row["date_naissance"] == person["date_naissance"]
        if person["spi"] in ir.PERSONA_SPIS:
            assert row["id"] in held
    # The file knows persons through their accounts only; most tax persons have some.
    assert all(r["id"] in held for r in f.personnes_physiques)
    assert len(by_spi) > 0.95 * len(population.persons)


def test_multi_holdings_exist_in_the_generated_data() -> None:
    f = _file(3_000)
    livrets: Counter[int] = Counter()
    accounts = {r["id"]: r for r in f.comptes}
    for d in f.detentions:
        account = accounts[d["compte_id"]]
        if (
            d["qualite"] == "TIT"
            and d["personne_physique_id"]
            and account["nature"] == 3
            and account["date_cloture"] is None
        ):
            livrets[d["personne_physique_id"]] += 1
    assert any(n > 1 for n in livrets.values())
    assert 3 in NATURES_REGLEMENTEES


def test_seed_writes_the_bank_file_and_replaces_it(session_factory: sessionmaker[Session]) -> None:
    seed(session_factory, households=30, seed=5, reference_year=YEAR)

    def counts(s: Session) -> tuple[int | None, ...]:
        return tuple(
            s.scalar(select(func.count()).select_from(m).where(m.store == "sandbox"))
            for m in (FicobaPersonnePhysique, FicobaPersonneMorale, FicobaCompte, FicobaDetention)
        )

    with session_factory() as s:
        first = counts(s)
        spis = set(
            s.scalars(
                select(FicobaPersonnePhysique.spi).where(FicobaPersonnePhysique.spi.is_not(None))
            )
        )
        tax = set(s.scalars(select(Person.spi)))
    assert all(n for n in first)
    assert spis <= tax - {ir.NO_TAX.spi}
    assert ir.PERSONA_SPIS - {ir.NO_TAX.spi} <= spis
    assert len(spis) > 0.9 * len(tax)
    seed(session_factory, households=30, seed=5, reference_year=YEAR)
    with session_factory() as s:
        assert counts(s) == first


def test_docs_quote_the_personas_identifiers() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    section = docs[docs.index("## FICOBA") :]
    for value in (
        ficoba.IBAN_MARTIN,
        ficoba.IBAN_MARTIN_CLOSED,
        ficoba.IBAN_BERNARD_JOINT,
        ficoba.IBAN_FOURNIER,
        ficoba.IBAN_LEGRAND_LIVRET,
        ficoba.IBAN_GARNIER_SIEGE,
        ficoba.IBAN_TILLEULS,
        ficoba.IBAN_MOREAU_EI,
        ficoba.IBAN_BONNET,
        ficoba.GARNIER_SIREN,
        ficoba.GARNIER_SIEGE,
        ficoba.GARNIER_ANNECY,
        ficoba.TILLEULS_SIRET,
        ficoba.MOREAU_EI_SIRET,
        ficoba.UNKNOWN_SIREN,
    ):
        assert value in section, value
    for persona in ficoba.PERSONAS:
        first = persona.who.split(" (")[0].split(" et ")[0].split(",")[0]
        assert first in section, persona.who
    # Every path of the provider's document, and so every search type, is exercised.
    for path in ("numCpte", "siretSiren", "spi", "perPhy", "perPro", "multiDet", "verifIban"):
        assert f"/comptes/{path}" in section
    for code, label in NATURES.items():
        assert re.search(rf"\| {code} \| {re.escape(label)} \|", section), label
