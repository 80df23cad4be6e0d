"""The deterministic fictive population of the sandbox: same inputs, identical rows."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, cast

from faker import Faker
from sqlalchemy import Table, delete, insert
from sqlalchemy.orm import Session, sessionmaker

from guichet.records.geography import COMMUNES, COUNTRIES, FRANCE
from guichet.records.models import IfiSituation, IrSituation, Person, ThAvis, ThLocal
from guichet.sandbox import personas
from guichet.sandbox.fiscal import COUPLE, Pac, ifi_record
from guichet.sandbox.household import Address, Declarant, Situation

log = logging.getLogger(__name__)

REVENUE_YEAR_OFFSETS = (1, 2, 3)
_SITUATIONS = ("C", "M", "O", "D", "V")
_SITUATION_WEIGHTS = (35, 30, 10, 15, 10)
_COMPLEMENTS = ("Appartement {}", "Bâtiment {}", "Résidence Les Tilleuls", "Escalier {}")
_INSERT_CHUNK = 5_000
# Housing tax (OS7): most households have one principal residence, some none (housed by
# someone else), some a secondary residence besides.
_TH_NONE = 0.12
_TH_DEPENDENCY = 0.35  # a garage or cellar in the principal assessment
_TH_SECONDARY = 0.06
_TH_PROFESSIONAL = 0.02  # a professional premises in the principal assessment
# IFI: a few households declare real estate above 800 k€; most of them are liable.
_IFI_DECLARES = 0.008
# The IR notice: the share of the tax withholding took, and how often the balance is unpaid.
_WITHHELD_SHARES = (1.0, 0.85, 1.1)
_WITHHELD_WEIGHTS = (60, 25, 15)
_UNPAID = 0.04


@dataclass(frozen=True, slots=True)
class SeedReport:
    store: str
    seed: int
    reference_year: int
    households: int
    persons: int
    situations: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Population:
    """Rows of the tables the sandbox store holds."""

    persons: list[dict[str, Any]]
    situations: list[dict[str, Any]]
    th_locaux: list[dict[str, Any]]
    th_avis: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    ifi: list[dict[str, Any]] = dataclasses.field(default_factory=list)


class _Housing:
    """Draws housing-tax premises from their own seeded ``random.Random``: adding them left
    every person and IR situation of a given seed as it was."""

    def __init__(self, seed: int, years: list[int], store: str) -> None:
        self.rng = random.Random(f"{seed}/th")  # noqa: S311 — reproducible fictive data
        self.years = years
        self.store = store
        self.headings: list[dict[str, Any]] = []  # ``th_avis`` rows, filled by ``rows``

    @staticmethod
    def invariant(commune_cog: str, number: int) -> str:
        """A premises' 10-character invariant: the commune's 3 last COG characters, then 7
        digits."""
        return f"{commune_cog[-3:]}{number % 10_000_000:07d}"

    def rows(
        self,
        spis: list[str],
        avis: str,
        premises: list[tuple[str, str, str]],
        *,
        principal: bool,
        years: list[int] | None = None,
        address: Address | None = None,
        payers: tuple[Declarant, ...] = (),
    ) -> list[dict[str, Any]]:
        """One assessment's rows: ``premises`` (nature, affectation, invariant) for each of
        ``spis`` and each year; its heading (at ``address``, in ``payers``' names) goes to
        ``headings``."""
        if address is not None:
            heading = address.th_heading(payers, premises[0][2][-4:])
            self.headings += [
                {
                    "store": self.store,
                    "spi": spi,
                    "annee": annee,
                    "avis": f"{annee}{avis}",
                    "record": heading,
                }
                for annee in (self.years if years is None else years)
                for spi in spis
            ]
        return [
            {
                "store": self.store,
                "spi": spi,
                "annee": annee,
                "invariant": invariant,
                "avis": f"{annee}{avis}",
                "nature_local": nature,
                "affectation": affectation,
                "principal": principal,
            }
            for annee in (self.years if years is None else years)
            for spi in spis
            for nature, affectation, invariant in premises
        ]

    def household(self, index: int, situation: Situation) -> list[dict[str, Any]]:
        rng = self.rng
        spis = [d.spi for d in situation.declarants]
        address = situation.address
        commune_cog = address.commune_cog
        if rng.random() < _TH_NONE:
            return []
        # One base number per household, one digit per premises: distinct within it.
        base = rng.randrange(900_000) * 10
        premises = [(rng.choice(("MA", "AP")), "H", self.invariant(commune_cog, base))]
        if rng.random() < _TH_DEPENDENCY:
            premises.append(("DE", "D", self.invariant(commune_cog, base + 1)))
        if rng.random() < _TH_PROFESSIONAL:
            premises.append(("LC", "P", self.invariant(commune_cog, base + 2)))
        out = self.rows(
            spis,
            f"P{index:07d}",
            premises,
            principal=True,
            address=address,
            payers=situation.declarants,
        )
        if rng.random() < _TH_SECONDARY:
            elsewhere = rng.choice(COMMUNES).cog
            second = [(rng.choice(("MA", "AP")), "H", self.invariant(elsewhere, base + 3))]
            out += self.rows(spis, f"S{index:07d}", second, principal=False)
        return out

    def personas(self) -> list[dict[str, Any]]:
        """The personas' premises (docs/sandbox.md): one principal residence at their
        address, except Chloé BLANC (none) and Julie ROUX (two in N-1, the year she married:
        her flat and the couple's house); the GARNIERs also have a secondary residence."""
        n1 = self.years[0]
        out: list[dict[str, Any]] = []
        by_spi = {d.spi: address for d, address in personas.declarants()}
        people = {d.spi: d for d, _address in personas.declarants()}
        garnier = [personas.FULL_1.spi, personas.FULL_2.spi]
        # Ranks number the premises: the personas added later come after the others.
        ranked = sorted(by_spi.items(), key=lambda i: (i[0] in personas.LATER_PERSONA_SPIS, i[0]))
        for rank, (spi, address) in enumerate(ranked):
            if spi == personas.NO_TAX.spi or spi in garnier[1:]:
                continue
            if spi == personas.BRIDE.spi:
                address = personas.BRIDE_FLAT  # her flat, not the couple's house
            cog = address.commune_cog
            spis = garnier if spi == garnier[0] else [spi]
            flat = cog.startswith("75") or spi == personas.BRIDE.spi
            main = [("AP" if flat else "MA", "H", _persona_invariant(cog, rank))]
            if spi in (personas.DUBOIS.spi, garnier[0]):
                main.append(("DE", "D", _persona_invariant(cog, 100 + rank)))
            payers = tuple(people[s] for s in spis)
            if spi == personas.BRIDE.spi:
                # Her flat (N-1 to N-3) and, from N-1, the couple's house: two principal
                # assessments in N-1.
                out += self.rows(
                    spis, f"PER{rank:02d}", main, principal=True, address=address, payers=payers
                )
                house_address = by_spi[personas.GROOM.spi]
                house = [("MA", "H", _persona_invariant(house_address.commune_cog, 200))]
                out += self.rows(
                    [spi],
                    "PER-ROUX-GIRARD",
                    house,
                    principal=True,
                    years=[n1],
                    address=house_address,
                    payers=(personas.BRIDE, personas.GROOM),
                )
                continue
            out += self.rows(
                spis, f"PER{rank:02d}", main, principal=True, address=address, payers=payers
            )
            if spi == garnier[0]:
                chalet = [("MA", "H", _persona_invariant("74056", 300))]
                out += self.rows(spis, "PER-GARNIER-S", chalet, principal=False)
        return out


def _persona_invariant(commune_cog: str, number: int) -> str:
    return _Housing.invariant(commune_cog, 9_000_000 + number)  # above generated ones


class _Generator:
    """Draws households from one seeded ``random.Random`` and one seeded Faker."""

    def __init__(self, seed: int, reference_year: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 — reproducible fictive data, not secrets
        self.fake = Faker("fr_FR")
        self.fake.seed_instance(seed)
        self.reference_year = reference_year

    def spis(self, count: int) -> list[str]:
        """Distinct valid SPIs starting with 1 or 2 (personas start with 3)."""
        from stdnum.fr import nif

        bodies = self.rng.sample(range(1_000_000_000, 3_000_000_000), count)
        return [f"{b}{nif.calc_check_digits(str(b))}" for b in bodies]

    def birth_date(self, low_age: int, high_age: int) -> dt.date:
        year = self.reference_year - self.rng.randint(low_age, high_age)
        return dt.date(year, 1, 1) + dt.timedelta(days=self.rng.randrange(365))

    def declarant(
        self, spi: str, sexe: str, age: tuple[int, int], nom: str | None = None
    ) -> Declarant:
        rng, fake = self.rng, self.fake
        first = fake.first_name_female if sexe == "F" else fake.first_name_male
        prenoms = first()
        if rng.random() < 0.4:
            prenoms += " " + first()
        born_abroad = rng.random() < 0.12
        return Declarant(
            spi=spi,
            sexe=sexe,
            nom=fake.last_name(),
            prenoms=prenoms,
            naissance=self.birth_date(*age),
            commune_naissance=None if born_abroad else rng.choice(COMMUNES).cog,
            pays_naissance=rng.choice(COUNTRIES).cog if born_abroad else FRANCE,
            nom_usage=nom,
        )

    def address(self) -> Address:
        rng = self.rng
        complement = None
        if rng.random() < 0.15:
            complement = rng.choice(_COMPLEMENTS).format(rng.randint(1, 40))
        voie = self.fake.street_address().replace(",", "")[:37]
        return Address(voie, rng.choice(COMMUNES).cog, complement)

    def household(self, index: int, spis: list[str]) -> tuple[Situation, list[Situation]]:
        """The N-1 situation and, derived from it, those of N-2 and N-3."""
        rng = self.rng
        sit_fam = rng.choices(_SITUATIONS, _SITUATION_WEIGHTS)[0]
        age = (55, 95) if sit_fam == "V" else (19, 90)
        sexe = rng.choice("MF")
        first = self.declarant(spis[0], sexe, age)
        decls: tuple[Declarant, ...] = (first,)
        if sit_fam in COUPLE:
            other_sexe = ("F" if sexe == "M" else "M") if rng.random() < 0.95 else sexe
            usage = (
                first.nom if sit_fam == "M" and other_sexe == "F" and rng.random() < 0.6 else None
            )
            lo = max(19, self.reference_year - first.naissance.year - 8)
            decls = (first, self.declarant(spis[1], other_sexe, (lo, lo + 14), nom=usage))
        youngest_age = min(self.reference_year - d.naissance.year for d in decls)
        pac = self.dependants(sit_fam, youngest_age)
        parent_isole = sit_fam not in COUPLE and (pac.F + pac.H + pac.J) > 0 and rng.random() < 0.8
        retired = [self.reference_year - d.naissance.year >= 63 for d in decls]
        salaires = tuple(0 if r else self.amount(27_000, 0.5) for r in retired)
        pensions = tuple(self.amount(19_000, 0.4) if r else 0 for r in retired)
        deficit = rng.random() < 0.02
        base = Situation(
            foyer=f"SBX{index:07d}",
            declarants=decls,
            sit_fam=sit_fam,
            address=self.address(),
            pac=pac,
            parent_isole=parent_isole,
            salaires=salaires,
            pensions=pensions,
            rcm=self.maybe(0.3, 600, 1.0),
            pv=self.maybe(0.05, 4_000, 1.0),
            fonc=0 if deficit else self.maybe(0.1, 7_000, 0.6),
            deficit_foncier=self.amount(6_000, 0.5) if deficit else 0,
            pro=self.maybe(0.07, 15_000, 0.8),
            alpha=self.maybe(0.005, 300, 0.5),
            chges=self.maybe(0.2, 800, 0.5),
            rici=self.maybe(0.15, 250, 0.8),
            div=self.maybe(0.02, 3_000, 0.8),
            pens_al_per=self.maybe(0.5, 2_400, 0.5) if sit_fam == "D" and pac.total else 0,
        )
        earlier = []
        birth_in_n1 = sit_fam in COUPLE and youngest_age < 45 and rng.random() < 0.08
        for offset in REVENUE_YEAR_OFFSETS[1:]:
            factor = (1 - rng.uniform(0.01, 0.04)) ** (offset - 1)
            pac_then = dataclasses.replace(pac, F=pac.F - 1) if birth_in_n1 and pac.F else pac
            earlier.append(self.scaled(base, factor, pac_then))
        return base, earlier

    def dependants(self, sit_fam: str, age: int) -> Pac:
        rng = self.rng
        if age > 62 or age < 21:
            return Pac()
        has_kids = rng.random() < (0.6 if sit_fam in COUPLE else 0.3)
        if not has_kids:
            return Pac()
        children = rng.choices((1, 2, 3, 4), (40, 40, 15, 5))[0]
        shared = sit_fam == "D" and rng.random() < 0.4
        adults = 1 if age > 45 and rng.random() < 0.3 else 0
        minors = max(children - adults, 0)
        pac = Pac(F=0 if shared else minors, H=minors if shared else 0, J=adults)
        if rng.random() < 0.03 and pac.F:
            pac = dataclasses.replace(pac, G=1)
        if rng.random() < 0.02:
            pac = dataclasses.replace(pac, R=1)
        return pac

    def amount(self, median: int, sigma: float) -> int:
        return max(1, round(self.rng.lognormvariate(0, sigma) * median))

    def maybe(self, probability: float, median: int, sigma: float) -> int:
        return self.amount(median, sigma) if self.rng.random() < probability else 0

    @staticmethod
    def scaled(situation: Situation, factor: float, pac: Pac) -> Situation:
        def s(value: int) -> int:
            return round(value * factor)

        return dataclasses.replace(
            situation,
            pac=pac,
            salaires=tuple(s(v) for v in situation.salaires),
            pensions=tuple(s(v) for v in situation.pensions),
            rcm=s(situation.rcm),
            pv=s(situation.pv),
            fonc=s(situation.fonc),
            deficit_foncier=s(situation.deficit_foncier),
            pro=s(situation.pro),
            alpha=s(situation.alpha),
            chges=s(situation.chges),
            rici=s(situation.rici),
            div=s(situation.div),
            pens_al_per=s(situation.pens_al_per),
        )


def _table(
    model: type[Person | IrSituation | ThLocal | ThAvis | IfiSituation],
) -> Table:
    return cast(Table, model.__table__)


def generate_population(
    *, households: int, seed: int, reference_year: int, store: str
) -> Population:
    """The personas, then ``households`` fictive households: persons, IR situations with
    their notices, IFI declarations, housing-tax premises and assessment headings (for the
    years N-1 to N-3, like the situations)."""
    gen = _Generator(seed, reference_year)
    persons, situations = personas.rows(store, reference_year)
    spis = gen.spis(2 * households)
    years = [reference_year - k for k in REVENUE_YEAR_OFFSETS]
    housing = _Housing(seed, years, store)
    th_locaux = housing.personas()
    ifi = personas.ifi_rows(store, reference_year)
    # Bills and IFI draw from their own seeded generators, like the housing tax: adding
    # them left every person and IR record of a given seed as it was.
    bills = random.Random(f"{seed}/bills")  # noqa: S311 — reproducible fictive data
    wealth = random.Random(f"{seed}/ifi")  # noqa: S311 — reproducible fictive data
    for i in range(households):
        latest, earlier = gen.household(i + 1, spis[2 * i : 2 * i + 2])
        for d in latest.declarants:
            persons.append(d.person_row(store, latest.address))
        for annrev, situation in zip(years, (latest, *earlier), strict=True):
            billed = dataclasses.replace(
                situation,
                withheld_share=bills.choices(_WITHHELD_SHARES, _WITHHELD_WEIGHTS)[0],
                paid=bills.random() >= _UNPAID,
            )
            situations.extend(billed.rows(store, annrev))
        th_locaux.extend(housing.household(i + 1, latest))
        if wealth.random() < _IFI_DECLARES:
            value = round(wealth.lognormvariate(0, 0.35) * 1_700_000, -3)
            for k, annrev in enumerate(years):
                record = ifi_record(round(value * (1 - 0.03 * k)))
                ifi += [
                    {
                        "store": store,
                        "spi": d.spi,
                        "annrev": annrev,
                        "foyer": latest.foyer,
                        "record": record,
                    }
                    for d in latest.declarants
                ]
    return Population(persons, situations, th_locaux, housing.headings, ifi)


def generate(
    *, households: int, seed: int, reference_year: int, store: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(person rows, ir_situation rows): the personas, then ``households`` fictive households."""
    population = generate_population(
        households=households, seed=seed, reference_year=reference_year, store=store
    )
    return population.persons, population.situations


def seed(
    session_factory: sessionmaker[Session],
    *,
    households: int = 10_000,
    seed: int = 2026,
    reference_year: int,
    store: str = "sandbox",
) -> SeedReport:
    """Replace ``store``'s persons, IR situations (with their notices), IFI declarations and
    housing-tax assessments by the population, in one transaction."""
    if households < 0:
        raise ValueError("households must be ≥ 0")
    started = time.perf_counter()
    population = generate_population(
        households=households, seed=seed, reference_year=reference_year, store=store
    )
    persons, situations = population.persons, population.situations
    with session_factory() as session, session.begin():
        session.execute(delete(IfiSituation).where(IfiSituation.store == store))
        session.execute(delete(ThAvis).where(ThAvis.store == store))
        session.execute(delete(ThLocal).where(ThLocal.store == store))
        session.execute(delete(IrSituation).where(IrSituation.store == store))
        session.execute(delete(Person).where(Person.store == store))
        tables = (
            (_table(Person), persons),
            (_table(IrSituation), situations),
            (_table(ThLocal), population.th_locaux),
            (_table(ThAvis), population.th_avis),
            (_table(IfiSituation), population.ifi),
        )
        for table, rows in tables:
            for start in range(0, len(rows), _INSERT_CHUNK):
                session.execute(insert(table), rows[start : start + _INSERT_CHUNK])
        # The same persons' bank accounts (FICOBA), and legal persons': docs/sandbox.md.
        from guichet.sandbox.ficoba import seed_bank_file

        seed_bank_file(session, population, seed=seed, reference_year=reference_year, store=store)
    report = SeedReport(
        store=store,
        seed=seed,
        reference_year=reference_year,
        households=households,
        persons=len(persons),
        situations=len(situations),
        seconds=round(time.perf_counter() - started, 3),
    )
    log.info(
        "sandbox:population:seeded store=%s households=%d persons=%d situations=%d seconds=%.3f",
        store,
        households,
        report.persons,
        report.situations,
        report.seconds,
    )
    return report
