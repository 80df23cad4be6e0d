"""The sandbox's bank-accounts file (FICOBA): the same fictive population's bank accounts.

Deterministic: the same population, seed and reference year give the same rows. The banks
are fictive (codes ``99101``…``99110``, BICs whose location code ends in ``0``, SWIFT's mark
of a test BIC), with a branch in each commune the population lives in; IBANs are valid
French IBANs (RIB key and ISO 13616 check digits), SIRENs and SIRETs pass their Luhn check.

Every person of the Impôt Particulier population gets accounts (found again by SPI),
drawn from their own random stream (``"{seed}/ficoba"``), so adding the bank file changed no
person, situation or premises of a given seed. Besides them the file holds legal persons
(companies, associations, sole traders, one per ~14 persons, with one to three
establishments), persons who died before the revenue years (their accounts closed or left
in a succession with an heir), and the personas of ``PERSONAS`` (``docs/sandbox.md``),
whose accounts are fixed whatever the seed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, cast

from sqlalchemy import Table, delete, insert
from sqlalchemy.orm import Session
from stdnum.fr import nif

from guichet.records.ficoba import (
    NATURE_COFFRE,
    NATURE_COURANT,
    NATURE_LIVRET_A,
    TYPE_INDIVIDUEL,
    TYPE_JOINT,
    FicobaCompte,
    FicobaDetention,
    FicobaEtablissement,
    FicobaGuichet,
    FicobaNom,
    FicobaPersonneMorale,
    FicobaPersonnePhysique,
    canonical,
    designation_key,
    person_key,
    phonetic_key,
    words_key,
)
from guichet.records.geography import (
    COMMUNES,
    COMMUNES_BY_COG,
    COUNTRIES,
    FRANCE,
    STREET_TYPES,
    adresse_reponse,
    commune_cog,
)
from guichet.sandbox import personas as ir
from guichet.sandbox.household import Address, Declarant

if TYPE_CHECKING:
    from guichet.sandbox.population import Population

log = logging.getLogger(__name__)

_INSERT_CHUNK: Final = 5_000
_STREET_TYPES: Final = frozenset(STREET_TYPES.values())

# --- banks, branches, numbers --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bank:
    code: str  # code établissement, five digits
    name: str
    bic: str
    network: bool = True  # a branch in every commune; otherwise one branch (online)


BANKS: Final = (
    Bank("99101", "BANQUE DU BAC A SABLE", "BBASFRP0"),
    Bank("99102", "CREDIT DES DEUX RIVES", "CDRIFRP0"),
    Bank("99103", "CAISSE D'EPARGNE FICTIVE", "CEFIFRP0"),
    Bank("99104", "BANQUE POPULAIRE IMAGINAIRE", "BPIMFRP0"),
    Bank("99105", "SOCIETE BANCAIRE DE L'EXEMPLE", "SBEXFRP0"),
    Bank("99106", "CREDIT MUTUEL DES ESSAIS", "CMESFRP0"),
    Bank("99107", "BANQUE EN LIGNE DEMO", "BLDEFRP0", network=False),
    Bank("99108", "BANQUE PRIVEE DE DEMONSTRATION", "BPDEFRP0"),
    Bank("99109", "ETABLISSEMENT DE PAIEMENT FICTIF", "EPFIFRP0", network=False),
    Bank("99110", "CAISSE REGIONALE DES TESTS", "CRTEFRP0"),
)
BANKS_BY_CODE: Final = {b.code: b for b in BANKS}
_NETWORK: Final = tuple(b for b in BANKS if b.network and b.code != "99108")
_NETWORK_WEIGHTS: Final = (22, 18, 16, 14, 12, 10, 8)
_ONLINE: Final = BANKS_BY_CODE["99107"]
_PAYMENT: Final = BANKS_BY_CODE["99109"]
_PRIVATE: Final = BANKS_BY_CODE["99108"]
_HEAD_OFFICE: Final = COMMUNES[0].cog  # where the single-branch banks are
_BRANCH_STREETS: Final = (
    "RUE DE LA REPUBLIQUE",
    "PLACE DU MARCHE",
    "AVENUE DU GENERAL LECLERC",
    "BOULEVARD GAMBETTA",
    "RUE NATIONALE",
    "COURS VICTOR HUGO",
)


def branch_code(commune: str) -> str:
    """The branch code a network bank gives its branch in ``commune`` (same for every bank);
    single-branch banks use ``00001``."""
    index = next(i for i, c in enumerate(COMMUNES) if c.cog == commune)
    return f"{(index + 1) * 10:05d}"


_BRANCH_BY_COMMUNE: Final = {c.cog: branch_code(c.cog) for c in COMMUNES}


def _branch_rows(store: str) -> list[dict[str, Any]]:
    rows = []
    for bank in BANKS:
        communes = COMMUNES if bank.network else (COMMUNES_BY_COG[_HEAD_OFFICE],)
        for commune in communes:
            digest = hashlib.sha256(f"{bank.code}/{commune.cog}".encode()).digest()
            street = _BRANCH_STREETS[digest[0] % len(_BRANCH_STREETS)]
            name = f"AGENCE {commune.name}" if bank.network else "SIEGE"
            rows.append(
                {
                    "store": store,
                    "etablissement": bank.code,
                    "code": _BRANCH_BY_COMMUNE[commune.cog] if bank.network else "00001",
                    "libelle": name,
                    "adresse": [
                        f"{bank.name} {name}"[:38],
                        f"{1 + digest[1] % 120} {street}",
                        f"{commune.postal_code} {commune.name}",
                    ],
                }
            )
    return rows


def rib_key(bank: str, branch: str, account: str) -> str:
    """The French RIB key of an account (letters of the number converted as the banks do)."""
    digits = account.translate(_RIB_LETTERS)
    return f"{97 - (89 * int(bank) + 15 * int(branch) + 3 * int(digits)) % 97:02d}"


_RIB_LETTERS: Final = str.maketrans(
    {
        c: str(v)
        for c, v in zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "12345678912345678923456789", strict=True)
    }
)


def french_iban(bank: str, branch: str, account: str) -> str:
    """The IBAN (ISO 13616 check digits) of a French account: ``FRkk`` + BBAN."""
    bban = f"{bank}{branch}{account}{rib_key(bank, branch, account)}"
    # Letters as numbers (A = 10 … Z = 35), "FR00" moved to the end: F = 15, R = 27.
    numeric = (bban if bban.isdigit() else "".join(str(int(c, 36)) for c in bban)) + "152700"
    return f"FR{98 - int(numeric) % 97:02d}{bban}"


def _luhn_completion(digits: str) -> str:
    """``digits`` + the digit that makes the whole pass Luhn's check."""
    for last in "0123456789":
        candidate = digits + last
        total = 0
        for i, c in enumerate(reversed(candidate)):
            d = int(c) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


def siren_of(body: int) -> str:
    """A valid SIREN from eight digits."""
    return _luhn_completion(f"{body:08d}")


def siret_of(siren: str, nic: int) -> str:
    """A valid SIRET: the SIREN, four digits of NIC, and the key."""
    return _luhn_completion(f"{siren}{nic:04d}")


# --- rows ------------------------------------------------------------------------------------


def _address_columns(adresse: Mapping[str, str], complement: str | None = None) -> dict[str, Any]:
    """The file's address columns from an address in R2P's ``AdresseReponse`` shape."""
    department = adresse.get("cdDepartement") or adresse.get("cdTOM")
    commune = adresse.get("cdCommune")
    postal = None
    if department and commune:
        known = COMMUNES_BY_COG.get(commune_cog(department, commune))
        postal = known.postal_code if known else None
    nature, libelle = None, adresse.get("lbVoie")
    if libelle:
        first, _, rest = libelle.partition(" ")
        if first in _STREET_TYPES and rest:
            nature, libelle = first, rest
    return {
        "adr_code_pays": adresse["cdPays"],
        "adr_code_departement": department,
        "adr_code_commune": commune,
        "adr_libelle_commune": adresse.get("lbCommune"),
        "adr_code_postal": postal,
        "adr_nature_voie": nature,
        "adr_libelle_voie": libelle,
        "adr_numero_voie": adresse.get("numeroVoie"),
        "adr_indice_repetition": adresse.get("indiceDeRepetition"),
        "adr_complement": canonical(complement) if complement else None,
        "adr_codifiee": "cdVoie" in adresse,
    }


def natural_person_row(
    store: str, pid: int, person: Mapping[str, Any], date_deces: dt.date | None = None
) -> dict[str, Any]:
    """A ``ficoba_personne_physique`` row from a ``person`` row (R2P's état civil)."""
    nom = canonical(person["nom_naissance"])
    usage = canonical(person["nom_usage"]) if person.get("nom_usage") else None
    prenoms = canonical(person["prenoms"])
    cog = person.get("code_commune_naissance")
    return {
        "store": store,
        "id": pid,
        "spi": person.get("spi"),
        "sexe": person["sexe"],
        "nom_naissance": nom,
        "nom_usage": usage,
        "prenoms": prenoms,
        "nom_cle": person_key(nom),
        "nom_usage_cle": person_key(usage) if usage else None,
        "prenoms_cle": words_key(prenoms),
        "prenom_cle": words_key(prenoms.split()[0]) if prenoms else "",
        "date_naissance": person["date_naissance"],
        "code_pays_naissance": person["code_pays_naissance"],
        "code_departement_naissance": person.get("code_dept_naissance") if cog else None,
        "code_commune_naissance": cog[-3:] if cog else None,
        "libelle_commune_naissance": canonical(person["lieu_naissance"]) if cog else None,
        "date_deces": date_deces,
        **_address_columns(person["adresse"]),
    }


def legal_person_row(
    store: str,
    pid: int,
    *,
    siret: str,
    raison_sociale: str,
    categorie: str,
    voie: str,
    commune: str,
    sigle: str | None = None,
    enseigne: str | None = None,
    complement: str | None = None,
) -> dict[str, Any]:
    """A ``ficoba_personne_morale`` row (one establishment)."""
    name = canonical(raison_sociale)
    sign = canonical(enseigne) if enseigne else None
    acronym = canonical(sigle) if sigle else None
    return {
        "store": store,
        "id": pid,
        "siren": siret[:9],
        "siret": siret,
        "raison_sociale": name,
        "sigle": acronym,
        "enseigne": sign,
        "categorie_juridique": categorie,
        "raison_sociale_cle": designation_key(name),
        "sigle_cle": person_key(acronym) if acronym else None,
        "enseigne_cle": designation_key(sign) if sign else None,
        "raison_sociale_phon": phonetic_key(designation_key(name)),
        "enseigne_phon": phonetic_key(designation_key(sign)) if sign else None,
        **_address_columns(adresse_reponse(voie=voie, commune=commune), complement),
    }


@dataclass
class Offsets:
    """Where a bank file's ids and numbers start: a file generated in batches (the
    benchmark's millions of accounts) continues the previous batch's (``BankFile.next``)."""

    personnes_physiques: int = 0
    personnes_morales: int = 0
    comptes: int = 0
    detentions: int = 0
    companies: int = 0
    boxes: int = 0
    counters: dict[str, int] = dataclasses.field(default_factory=dict)
    noms: frozenset[str] = frozenset()  # the name keys already in the vocabulary


@dataclass
class BankFile:
    """The rows of the six FICOBA tables of one store."""

    store: str
    start: Offsets = dataclasses.field(default_factory=Offsets)
    next: Offsets = dataclasses.field(default_factory=Offsets)
    etablissements: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    guichets: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    personnes_physiques: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    personnes_morales: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    comptes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    detentions: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    noms: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # ficoba_nom


class _Writer:
    """Appends rows with sequential ids; numbers accounts per bank, uniquely."""

    def __init__(self, store: str, reference_year: int, start: Offsets | None = None) -> None:
        self.start = start or Offsets()
        self.file = BankFile(store, self.start)
        self.store = store
        self.year = reference_year
        self.file.etablissements = [
            {"store": store, "code": b.code, "libelle": b.name, "bic": b.bic} for b in BANKS
        ]
        self.file.guichets = _branch_rows(store)
        self._counters = {b.code: self.start.counters.get(b.code, 0) for b in BANKS}
        self._boxes = self.start.boxes
        self.persons_drawn = 0  # ids given, the persons without any account dropped or not
        self.companies = self.start.companies

    def offsets(self) -> Offsets:
        """Where the next batch starts."""
        f = self.file
        return Offsets(
            self.start.personnes_physiques + self.persons_drawn,
            self.start.personnes_morales + len(f.personnes_morales),
            self.start.comptes + len(f.comptes),
            self.start.detentions + len(f.detentions),
            self.companies,
            self._boxes,
            dict(self._counters),
            self.start.noms | {row["cle"] for row in f.noms},
        )

    def finish(self) -> None:
        """Drop the persons who hold nothing (the file only knows persons through their
        accounts), then gather the name keys the vocabulary does not hold yet."""
        held = {d["personne_physique_id"] for d in self.file.detentions}
        self.file.personnes_physiques = [
            r for r in self.file.personnes_physiques if r["id"] in held
        ]
        self.vocabulary()

    def vocabulary(self) -> None:
        """The name keys of this file's persons the vocabulary does not hold yet."""
        keys = {r["nom_cle"] for r in self.file.personnes_physiques}
        keys |= {r["nom_usage_cle"] for r in self.file.personnes_physiques if r["nom_usage_cle"]}
        self.file.noms = [
            {"store": self.store, "cle": key, "phon": phonetic_key(key)}
            for key in sorted(keys - self.start.noms)
        ]

    def pp_row(self, pid: int) -> dict[str, Any]:
        return self.file.personnes_physiques[pid - self.start.personnes_physiques - 1]

    def account_row(self, cid: int) -> dict[str, Any]:
        return self.file.comptes[cid - self.start.comptes - 1]

    def person(self, person: Mapping[str, Any], date_deces: dt.date | None = None) -> int:
        self.persons_drawn += 1
        pid = self.start.personnes_physiques + self.persons_drawn
        self.file.personnes_physiques.append(
            natural_person_row(self.store, pid, person, date_deces)
        )
        return pid

    def company(self, **kw: Any) -> int:
        pid = self.start.personnes_morales + len(self.file.personnes_morales) + 1
        self.file.personnes_morales.append(legal_person_row(self.store, pid, **kw))
        return pid

    def account(
        self,
        bank: Bank,
        commune: str | None,
        nature: int,
        opened: dt.date,
        *,
        type_: int = TYPE_INDIVIDUEL,
        caracteristique: int = 1,
        motif: str = "01",
        closed: dt.date | None = None,
        motif_cloture: str = "01",
        numero: str | None = None,
        resident: bool = True,
        succession: bool = False,
        fiscal_delay: int = 9,
    ) -> int:
        """A new account (or box, for ``NATURE_COFFRE``) at ``bank``'s branch in ``commune``
        (its head office for a single-branch bank, or a commune it has no branch in)."""
        branch = _BRANCH_BY_COMMUNE.get(commune or "", "00010") if bank.network else "00001"
        if nature == NATURE_COFFRE:
            if numero is None:
                self._boxes += 1
                numero = f"CF{self._boxes:07d}"
            iban = None
        else:
            if numero is None:
                self._counters[bank.code] += 1
                # A bijection of the counter onto 11 digits below 9·10¹⁰ (persona numbers
                # start with 9): distinct, and not in counting order.
                numero = f"{(self._counters[bank.code] * 7_919 + 104_729) % 90_000_000_000:011d}"
            iban = french_iban(bank.code, branch, numero)
        cid = self.start.comptes + len(self.file.comptes) + 1
        self.file.comptes.append(
            {
                "store": self.store,
                "id": cid,
                "iban": iban,
                "etablissement": bank.code,
                "guichet": branch,
                "numero": numero,
                "format": "INTERNE" if iban is None else "IBAN",
                "nature": nature,
                "type": type_,
                "caracteristique": caracteristique,
                "devise": "EUR",
                "date_ouverture": opened,
                "date_fiscale": opened + dt.timedelta(days=fiscal_delay),
                "motif_ouverture": motif,
                "date_cloture": closed,
                "motif_cloture": motif_cloture if closed else None,
                "resident": resident,
                "succession": succession,
            }
        )
        return cid

    def hold(
        self,
        compte: int,
        qualite: str,
        *,
        pp: int | None = None,
        pm: int | None = None,
        debut: dt.date | None = None,
        fin: dt.date | None = None,
    ) -> None:
        self.file.detentions.append(
            {
                "store": self.store,
                "id": self.start.detentions + len(self.file.detentions) + 1,
                "compte_id": compte,
                "personne_physique_id": pp,
                "personne_morale_id": pm,
                "qualite": qualite,
                "date_debut": debut,
                "date_fin": fin,
            }
        )

    def opened_on(self, compte: int) -> dt.date:
        return cast(dt.date, self.account_row(compte)["date_ouverture"])


# --- personas ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FicobaPersona:
    key: str
    identifiant: str  # the SPI, SIREN, SIRET or IBAN to search with
    who: str
    purpose: str  # what it lets a partner test, in the portal's French


# FICOBA-only persons (no SPI: unknown to the tax files), by key.
DUPOND = Declarant("", "M", "Dupond", "Jean", dt.date(1975, 5, 6), "75111")
DUPONT_JP = Declarant("", "M", "Dupont", "Jean-Pierre", dt.date(1975, 9, 12), "75118")
MULLER = Declarant("", "M", "Müller", "Hans", dt.date(1969, 4, 2), None, pays_naissance="99109")
_FICOBA_ONLY: Final = ("DUPOND", "DUPONT_JP", "MULLER")
# Legal persons of the personas: SIREN bodies 9000000x (generated ones stay below 9·10⁷).
GARNIER_SIREN = siren_of(90_000_001)
GARNIER_SIEGE = siret_of(GARNIER_SIREN, 1)
GARNIER_ANNECY = siret_of(GARNIER_SIREN, 2)
TILLEULS_SIREN = siren_of(90_000_002)
TILLEULS_SIRET = siret_of(TILLEULS_SIREN, 1)
MOREAU_EI_SIREN = siren_of(90_000_003)
MOREAU_EI_SIRET = siret_of(MOREAU_EI_SIREN, 1)
NOTAIRE_SIREN = siren_of(90_000_004)
NOTAIRE_SIRET = siret_of(NOTAIRE_SIREN, 1)
# A valid SIREN nobody has: the "no legal person" outcome.
UNKNOWN_SIREN = siren_of(90_000_099)


def persona_iban(bank: str, commune: str | None, number: int) -> str:
    """The IBAN of persona account ``number`` at ``bank``'s branch in ``commune``."""
    branch = _BRANCH_BY_COMMUNE[commune] if commune else "00001"
    return french_iban(bank, branch, f"9{number:010d}")


# The IBANs docs/sandbox.md quotes.
IBAN_MARTIN = persona_iban("99101", "69381", 1)
IBAN_MARTIN_CLOSED = persona_iban("99102", "69381", 4)
IBAN_BERNARD_JOINT = persona_iban("99105", "33063", 10)
IBAN_FOURNIER = persona_iban("99104", "35238", 40)
IBAN_LEGRAND_LIVRET = persona_iban("99110", "80021", 51)
IBAN_GARNIER_SIEGE = persona_iban("99106", "67482", 70)
IBAN_TILLEULS = persona_iban("99103", "38185", 90)
IBAN_MOREAU_EI = persona_iban("99101", "31555", 100)
IBAN_BONNET = persona_iban("99110", "87085", 110)

PERSONAS: Final = (
    FicobaPersona(
        "ficoba-single",
        ir.SINGLE.spi,
        "Lucie MARTIN",
        "Un compte courant, un livret A, un LDDS ouverts, un compte courant clos (transfert) : "
        "recherche par SPI, par état civil, par IBAN ; vérification d'IBAN concordante.",
    ),
    FicobaPersona(
        "ficoba-joint",
        ir.COUPLE_1.spi,
        "Nicolas BERNARD et Camille PETIT ép. BERNARD",
        "Compte joint (titulaire et cotitulaire) ; elle est aussi mandataire du PEA de son "
        "mari ; recherche par nom d'usage.",
    ),
    FicobaPersona(
        "ficoba-multi-detention",
        ir.FAMILY.spi,
        "Sophie LEFEVRE",
        "Deux livrets A ouverts dans deux banques (multi-détention), un troisième clos ; "
        "nom accentué (« Lefèvre »).",
    ),
    FicobaPersona(
        "ficoba-homonymes",
        ir.HOMONYM_1.spi,
        "Jean DUPONT (deux), Jean DUPOND, Jean-Pierre DUPONT",
        "Homonymes : plusieurs réponses classées par scoreAppariement ; l'adresse les départage.",
    ),
    FicobaPersona(
        "ficoba-ne-a-l-etranger",
        ir.ABROAD.spi,
        "Pedro DA SILVA",
        "Né au Portugal ; « Da Silva », « da-silva » et « DASILVA » le trouvent.",
    ),
    FicobaPersona(
        "ficoba-sans-compte",
        ir.NO_TAX.spi,
        "Chloé BLANC",
        "Aucun compte : aucune réponse.",
    ),
    FicobaPersona(
        "ficoba-comptes-clos",
        ir.NO_N1.spi,
        "Hugo FOURNIER",
        "Tous ses comptes sont clos : date de clôture ; aucune multi-détention.",
    ),
    FicobaPersona(
        "ficoba-decede",
        ir.DECEASED.spi,
        "Marcel LEGRAND",
        "Titulaire décédé (dateDeces) : compte-titres clos pour décès, livret A en "
        "succession avec son épouse ayant droit et un notaire mandataire ; le compte joint "
        "continue avec la veuve.",
    ),
    FicobaPersona(
        "ficoba-procuration",
        ir.SHARED_23255.spi,
        "Jeanne BONNET",
        "Son compte courant a un mandataire (Paul LEROY, 3999999930262) : la recherche par "
        "SPI de Paul LEROY le trouve aussi.",
    ),
    FicobaPersona(
        "ficoba-personne-morale",
        GARNIER_SIREN,
        "GARNIER ET FILS (SARL, sigle GEF, enseigne MENUISERIE GARNIER)",
        "Deux établissements (siège à Strasbourg, Annecy) ; bénéficiaires effectifs Louis "
        "GARNIER et Marie CHEVALIER ép. GARNIER, gérant mandataire.",
    ),
    FicobaPersona(
        "ficoba-coffre-fort",
        ir.FULL_1.spi,
        "Louis GARNIER et Marie CHEVALIER ép. GARNIER",
        "Location d'un coffre-fort à deux (sans IBAN) en plus de leurs comptes.",
    ),
    FicobaPersona(
        "ficoba-association",
        TILLEULS_SIRET,
        "ASSOCIATION SPORTIVE DES TILLEULS (sigle AST)",
        "Deux livrets A ouverts (multi-détention d'une personne morale) ; trésorière "
        "mandataire Emma ROCHE.",
    ),
    FicobaPersona(
        "ficoba-entrepreneur-individuel",
        MOREAU_EI_SIRET,
        "MOREAU JULIEN (entrepreneur individuel, enseigne JM PLOMBERIE)",
        "Compte professionnel d'un entrepreneur individuel, catégorie juridique 1000.",
    ),
    FicobaPersona(
        "ficoba-non-resident",
        "",
        "Hans MULLER",
        "Né et domicilié en Allemagne, sans SPI : compte non-résident, adresse à l'étranger.",
    ),
)


class _Personas:
    """The personas' accounts: fixed whatever the seed (relative to the reference year)."""

    def __init__(self, w: _Writer, pids: Mapping[str, int]) -> None:
        self.w = w
        self.pids = pids
        self.year = w.year

    def d(self, back: int, month: int, day: int) -> dt.date:
        return dt.date(self.year - back, month, day)

    def acct(
        self, number: int, bank: str, commune: str | None, nature: int, opened: dt.date, **kw: Any
    ) -> int:
        numero = f"9{number:010d}" if nature != NATURE_COFFRE else f"CF9{number:06d}"
        return self.w.account(BANKS_BY_CODE[bank], commune, nature, opened, numero=numero, **kw)

    def own(self, spi: str, number: int, bank: str, nature: int, opened: dt.date, **kw: Any) -> int:
        """An individual account of persona ``spi`` at the branch of their commune."""
        commune = kw.pop("commune", None) or self._commune(spi)
        cid = self.acct(number, bank, commune, nature, opened, **kw)
        self.w.hold(cid, "TIT", pp=self.pids[spi], debut=opened)
        return cid

    def joint(
        self, first: str, second: str, number: int, bank: str, opened: dt.date, **kw: Any
    ) -> int:
        nature = kw.pop("nature", NATURE_COURANT)
        cid = self.acct(number, bank, self._commune(first), nature, opened, type_=TYPE_JOINT, **kw)
        self.w.hold(cid, "TIT", pp=self.pids[first], debut=opened)
        self.w.hold(cid, "COT", pp=self.pids[second], debut=opened)
        return cid

    def _commune(self, spi: str) -> str:
        row = self.w.pp_row(self.pids[spi])
        return commune_cog(row["adr_code_departement"], row["adr_code_commune"])

    def build(self) -> None:
        d, own, joint, w = self.d, self.own, self.joint, self.w
        # Lucie MARTIN: accounts open and one closed by a transfer.
        martin = ir.SINGLE.spi
        own(martin, 1, "99101", NATURE_COURANT, d(8, 9, 1), motif="02")
        own(martin, 2, "99101", NATURE_LIVRET_A, d(8, 9, 1))
        own(martin, 3, "99102", 4, d(5, 3, 12))
        own(
            martin, 4, "99102", NATURE_COURANT, d(14, 10, 2), closed=d(8, 8, 31), motif_cloture="04"
        )
        # The BERNARDs: a joint account, her proxy on his PEA.
        nicolas, camille = ir.COUPLE_1.spi, ir.COUPLE_2.spi
        joint(nicolas, camille, 10, "99105", d(10, 6, 15))
        own(nicolas, 11, "99105", NATURE_LIVRET_A, d(18, 2, 1))
        pea = own(nicolas, 12, "99108", 11, d(6, 1, 20), commune="75107")
        w.hold(pea, "MAN", pp=self.pids[camille], debut=d(4, 5, 1))
        own(camille, 13, "99105", NATURE_LIVRET_A, d(16, 9, 30))
        own(camille, 14, "99102", 4, d(3, 11, 5))
        # Sophie LEFEVRE: two open Livrets A (multi-holding), a third closed.
        sophie = ir.FAMILY.spi
        own(sophie, 20, "99101", NATURE_COURANT, d(20, 9, 1))
        own(sophie, 21, "99101", NATURE_LIVRET_A, d(15, 4, 2))
        own(sophie, 22, "99103", NATURE_LIVRET_A, d(3, 1, 15))
        own(sophie, 23, "99106", NATURE_LIVRET_A, d(12, 5, 5), closed=d(6, 6, 30))
        # The homonyms: two Jean DUPONT (same état civil), a DUPOND, a Jean-Pierre DUPONT.
        own(ir.HOMONYM_1.spi, 30, "99101", NATURE_COURANT, d(22, 3, 1))
        own(ir.HOMONYM_1.spi, 31, "99101", NATURE_LIVRET_A, d(22, 3, 1))
        own(ir.HOMONYM_2.spi, 32, "99104", NATURE_COURANT, d(19, 7, 8))
        own(ir.HOMONYM_2.spi, 33, "99103", NATURE_LIVRET_A, d(11, 2, 14))
        own("DUPOND", 34, "99102", NATURE_COURANT, d(17, 10, 10))
        own("DUPONT_JP", 35, "99110", NATURE_COURANT, d(9, 1, 3))
        # Pedro DA SILVA, an online bank.
        own(ir.ABROAD.spi, 36, "99107", NATURE_COURANT, d(7, 5, 19))
        # Hugo FOURNIER: everything closed.
        hugo = ir.NO_N1.spi
        own(hugo, 40, "99104", NATURE_COURANT, d(9, 9, 1), closed=d(1, 8, 31))
        own(hugo, 41, "99104", NATURE_LIVRET_A, d(9, 9, 1), closed=d(1, 8, 31))
        # Marcel LEGRAND died on 17 March of N-1; Monique is his widow.
        marcel, monique = ir.DECEASED.spi, ir.WIDOW.spi
        death = dt.date(self.year - 1, *ir.DEATH)
        joint(marcel, monique, 50, "99110", d(31, 4, 1))
        livret = own(marcel, 51, "99110", NATURE_LIVRET_A, d(25, 6, 1), succession=True)
        w.hold(livret, "AYD", pp=self.pids[monique], debut=death)
        notary = w.company(
            siret=NOTAIRE_SIRET,
            raison_sociale="Office notarial des Jacobins",
            categorie="5485",
            voie="3 rue des Jacobins",
            commune="80021",
        )
        w.hold(livret, "MAN", pm=notary, debut=death + dt.timedelta(days=20))
        clients = self.acct(52, "99110", "80021", NATURE_COURANT, d(12, 1, 10), caracteristique=4)
        w.hold(clients, "TIT", pm=notary, debut=d(12, 1, 10))
        own(
            marcel,
            53,
            "99108",
            10,
            d(15, 3, 3),
            commune="75107",
            closed=d(1, 9, 30),
            motif_cloture="03",
        )
        own(monique, 54, "99110", 4, d(10, 10, 1))
        # Jeanne BONNET gave Paul LEROY a proxy; he banks online.
        bonnet = own(ir.SHARED_23255.spi, 110, "99110", NATURE_COURANT, d(40, 2, 1))
        w.hold(bonnet, "MAN", pp=self.pids[ir.SHARED_30262.spi], debut=d(2, 11, 4))
        own(ir.SHARED_23255.spi, 111, "99110", 5, d(6, 1, 9))
        own(ir.SHARED_30262.spi, 112, "99107", NATURE_COURANT, d(5, 6, 6))
        own(ir.SHARED_30262.spi, 113, "99107", NATURE_LIVRET_A, d(5, 6, 6))
        self._garnier()
        self._others()

    def _garnier(self) -> None:
        d, own, joint, w = self.d, self.own, self.joint, self.w
        louis, marie = ir.FULL_1.spi, ir.FULL_2.spi
        joint(louis, marie, 60, "99106", d(35, 9, 1))
        joint(louis, marie, 61, "99106", d(8, 2, 2), nature=NATURE_COFFRE)
        own(louis, 62, "99106", 10, d(20, 4, 1))
        own(louis, 63, "99106", 11, d(20, 4, 1))
        own(marie, 64, "99106", NATURE_LIVRET_A, d(30, 1, 5))
        siege = w.company(
            siret=GARNIER_SIEGE,
            raison_sociale="Garnier et Fils SARL",
            sigle="GEF",
            enseigne="Menuiserie Garnier",
            categorie="5499",
            voie="14 rue du Marais Vert",
            commune="67482",
        )
        annecy = w.company(
            siret=GARNIER_ANNECY,
            raison_sociale="Garnier et Fils SARL",
            sigle="GEF",
            enseigne="Menuiserie Garnier Annecy",
            categorie="5499",
            voie="5 avenue de Genève",
            commune="74010",
            complement="Zone artisanale",
        )
        accounts = [
            (
                siege,
                self.acct(70, "99106", "67482", NATURE_COURANT, d(18, 3, 1), caracteristique=2),
            ),
            (siege, self.acct(71, "99106", "67482", 9, d(4, 6, 1), caracteristique=2)),
            (
                annecy,
                self.acct(72, "99104", "74010", NATURE_COURANT, d(6, 9, 1), caracteristique=2),
            ),
        ]
        for company, cid in accounts:
            opened = w.opened_on(cid)
            w.hold(cid, "TIT", pm=company, debut=opened)
            w.hold(cid, "MAN", pp=self.pids[louis], debut=opened)
            w.hold(cid, "BEF", pp=self.pids[louis], debut=opened)
            w.hold(cid, "BEF", pp=self.pids[marie], debut=opened)

    def _others(self) -> None:
        d, own, joint, w = self.d, self.own, self.joint, self.w
        tilleuls = w.company(
            siret=TILLEULS_SIRET,
            raison_sociale="Association sportive des Tilleuls",
            sigle="AST",
            categorie="9220",
            voie="8 rue des Tilleuls",
            commune="38185",
        )
        emma = self.pids[ir.SHARED_31263.spi]
        for number, bank, nature, opened in (
            (90, "99103", NATURE_COURANT, d(12, 9, 1)),
            (91, "99103", NATURE_LIVRET_A, d(12, 9, 1)),
            (92, "99101", NATURE_LIVRET_A, d(2, 3, 15)),
        ):
            cid = self.acct(number, bank, "38185", nature, opened)
            w.hold(cid, "TIT", pm=tilleuls, debut=opened)
            w.hold(cid, "MAN", pp=emma, debut=opened)
        moreau = ir.DEFICIT.spi
        ei = w.company(
            siret=MOREAU_EI_SIRET,
            raison_sociale="Moreau Julien",
            enseigne="JM Plomberie",
            categorie="1000",
            voie="21 allée Jean Jaurès",
            commune="31555",
        )
        pro = self.acct(100, "99101", "31555", NATURE_COURANT, d(9, 2, 1), caracteristique=2)
        w.hold(pro, "TIT", pm=ei, debut=d(9, 2, 1))
        own(moreau, 101, "99101", NATURE_COURANT, d(26, 10, 1))
        own(moreau, 102, "99102", NATURE_LIVRET_A, d(26, 10, 1))
        own("MULLER", 120, "99108", NATURE_COURANT, d(11, 4, 4), commune="75107", resident=False)
        # The others: a current account and a Livret A, couples a joint account.
        number = 200
        for spi in (
            ir.SECRET.spi,
            ir.PENDING.spi,
            ir.DUBOIS.spi,
            ir.RECTIFIED.spi,
            ir.SHARED_31263.spi,
            ir.SHARED_SPOUSE_2.spi,
            ir.SHARED_15247.spi,
            ir.SHARED_SPOUSE_1.spi,
            ir.BRIDE.spi,
            ir.GROOM.spi,
            ir.EX_HUSBAND.spi,
            ir.EX_WIFE.spi,
        ):
            own(spi, number, "99102", NATURE_COURANT, d(12, 5, 2))
            own(spi, number + 1, "99103", NATURE_LIVRET_A, d(12, 5, 2))
            number += 2
        own(ir.DUBOIS.spi, number, "99109", 13, d(2, 2, 2))
        joint(ir.SHARED_15247.spi, ir.SHARED_SPOUSE_1.spi, 240, "99104", d(14, 7, 1))
        joint(ir.SHARED_31263.spi, ir.SHARED_SPOUSE_2.spi, 241, "99104", d(6, 7, 1))
        wedding = dt.date(self.year - 1, *ir.WEDDING)
        joint(ir.BRIDE.spi, ir.GROOM.spi, 242, "99105", wedding + dt.timedelta(days=6))
        divorce = dt.date(self.year - 1, *ir.DIVORCE)
        joint(
            ir.EX_HUSBAND.spi,
            ir.EX_WIFE.spi,
            243,
            "99105",
            d(13, 9, 9),
            closed=divorce + dt.timedelta(days=14),
        )


def _persona_persons(store: str) -> list[tuple[str, dict[str, Any]]]:
    """The FICOBA-only persona persons by key, as ``person`` rows without SPI."""
    rows = []
    for key, person, address in (
        ("DUPOND", DUPOND, Address("27 rue de la Roquette", "75111")),
        ("DUPONT_JP", DUPONT_JP, Address("4 rue Custine", "75118")),
        ("MULLER", MULLER, Address("1 rue de Paris", "75107")),
    ):
        rows.append((key, person.person_row(store, address) | {"spi": None}))
    # Hans MULLER lives in Germany.
    rows[-1][1]["adresse"] = adresse_reponse(voie="12 Bahnhofstraße", commune=None, pays="99109")
    return rows


# --- generated accounts -------------------------------------------------------------------------

_ACTIVITIES_TEXT: Final = (
    "BOULANGERIE GARAGE PHARMACIE RESTAURANT PLOMBERIE ELECTRICITE COIFFURE BOUCHERIE "
    "TRANSPORTS MENUISERIE CONSEIL INFORMATIQUE IMMOBILIER FLEURS TRAITEUR CARROSSERIE"
)
_ACTIVITIES: Final = tuple(_ACTIVITIES_TEXT.split())
_PLACES: Final = ("DU CENTRE", "DE LA GARE", "DES PLATANES", "DU PORT", "DE LA PLACE", "DU PARC")
# The personas' designations and sigles, never drawn for a generated legal person.
_RESERVED: Final = frozenset({"GARNIER FILS", "MOREAU JULIEN", "GEF", "AST"})  # keys, sigles
_CATEGORIES: Final = ("5499", "5498", "5710", "5720", "5599", "6540", "9220", "1000", "5202")
_CATEGORY_WEIGHTS: Final = (22, 8, 25, 12, 3, 12, 10, 7, 1)
_LEGAL_FORM: Final[Mapping[str, str]] = MappingProxyType(
    {"5499": "SARL", "5498": "EURL", "5710": "SAS", "5720": "SASU", "5599": "SA", "5202": "SNC"}
)
_WITH_OWNERS: Final = frozenset({"5499", "5498", "5710", "5720", "5599", "6540", "5202"})
_STREETS: Final = (
    "RUE DES ECOLES",
    "AVENUE JEAN JAURES",
    "RUE PASTEUR",
    "PLACE DE L'EGLISE",
    "BOULEVARD DE LA LIBERTE",
    "RUE DU MOULIN",
    "CHEMIN DES VIGNES",
    "ALLEE DES PINS",
    "RUE VICTOR HUGO",
    "IMPASSE DES LILAS",
)
# Savings and other accounts: (nature, probability for an adult).
_SAVINGS: Final = (
    (NATURE_LIVRET_A, 0.78),
    (4, 0.45),  # LDDS
    (5, 0.10),  # LEP
    (8, 0.20),  # PEL
    (7, 0.06),  # CEL
    (2, 0.16),  # compte sur livret
    (10, 0.12),  # compte-titres
    (11, 0.10),  # PEA
    (12, 0.01),  # PEA-PME
    (9, 0.03),  # compte à terme
)
_CLOSED: Final = 0.12
_MULTI_HOLDING: Final = 0.004  # a second open Livret A elsewhere (irregular)
_PROXY: Final = 0.03
_BOX: Final = 0.015
_DECEASED: Final = 0.01  # persons who died before the revenue years, per living person
_COMPANY_EVERY: Final = 14  # one legal person per this many natural persons


class _Generated:
    def __init__(self, w: _Writer, rng: random.Random, names: Sequence[str] = ()) -> None:
        self.w = w
        self.rng = rng
        self.names = names  # Faker's last names, canonical: companies are named after them
        self.year = w.year
        self.living: list[int] = []  # generated natural persons, for proxies and owners

    def day_between(self, low: dt.date, high: dt.date) -> dt.date:
        span = (high - low).days
        return low + dt.timedelta(days=self.rng.randrange(span + 1)) if span > 0 else low

    def closing(self, opened: dt.date) -> dt.date | None:
        """A closing date at least a year after opening, within the last ten years, or None
        (still open)."""
        if self.rng.random() >= _CLOSED:
            return None
        low = max(opened + dt.timedelta(days=365), dt.date(self.year - 10, 1, 1))
        high = dt.date(self.year - 1, 12, 31)
        return self.day_between(low, high) if low < high else None

    def account(
        self,
        bank: Bank,
        commune: str | None,
        nature: int,
        holders: Sequence[int],
        adult: dt.date,
        *,
        opened: dt.date | None = None,
        may_close: bool = True,
        motif: str = "01",
    ) -> int:
        """An account of ``holders`` (the first the holder, the others co-holders), opened
        after ``adult`` (or on ``opened``), closed at random when ``may_close``."""
        if opened is None:
            opened = self.day_between(adult, dt.date(self.year - 1, 12, 31))
        closed = self.closing(opened) if may_close else None
        why = "04" if closed and self.rng.random() < 0.4 else "01"
        type_ = TYPE_JOINT if len(holders) > 1 else TYPE_INDIVIDUEL
        cid = self.w.account(
            bank,
            commune,
            nature,
            opened,
            type_=type_,
            motif=motif,
            closed=closed,
            motif_cloture=why,
            fiscal_delay=self.rng.randint(2, 28),
        )
        for i, pid in enumerate(holders):
            self.w.hold(cid, "TIT" if i == 0 else "COT", pp=pid, debut=opened)
        return cid

    def person(self, pid: int, row: Mapping[str, Any], spouse: int | None, first: bool) -> None:
        rng = self.rng
        commune = (
            commune_cog(row["adr_code_departement"], row["adr_code_commune"])
            if row["adr_code_departement"] and row["adr_code_commune"]
            else None
        )
        born: dt.date = row["date_naissance"]
        adult = max(
            dt.date(min(born.year + 18, self.year - 1), born.month, min(born.day, 28)),
            dt.date(self.year - 35, 1, 1),
        )
        young = self.year - born.year <= 25
        main = rng.choices(_NETWORK, _NETWORK_WEIGHTS)[0]
        current = None
        if rng.random() < 0.96:
            moved, motif = None, "01"
            if rng.random() < 0.2:  # an earlier current account elsewhere, moved here
                other = rng.choice([b for b in _NETWORK if b is not main])
                before = self.account(other, commune, NATURE_COURANT, [pid], adult, may_close=False)
                moved = self._close_by_transfer(before)
                motif = "02" if moved else "01"
            current = self.account(
                main, commune, NATURE_COURANT, [pid], adult, opened=moved, motif=motif
            )
            if rng.random() < _PROXY:
                proxy = spouse or (rng.choice(self.living) if self.living else None)
                if proxy is not None and proxy != pid:
                    self.w.hold(current, "MAN", pp=proxy, debut=self.w.opened_on(current))
        if rng.random() < 0.15:
            bank = _ONLINE if rng.random() < 0.6 else rng.choice(_NETWORK)
            self.account(bank, commune, NATURE_COURANT, [pid], adult)
        if rng.random() < 0.10:
            self.account(_PAYMENT, None, 13, [pid], max(adult, dt.date(self.year - 8, 1, 1)))
        if spouse is not None and first and rng.random() < 0.6:
            self.account(main, commune, NATURE_COURANT, [pid, spouse], adult)
        for nature, probability in _SAVINGS:
            if rng.random() < probability:
                bank = _PRIVATE if nature in (10, 11) and rng.random() < 0.1 else main
                self.account(bank, commune, nature, [pid], adult)
        if young and rng.random() < 0.4:
            self.account(main, commune, 6, [pid], adult)
        if rng.random() < _MULTI_HOLDING:
            other = rng.choice([b for b in _NETWORK if b is not main])
            self.account(other, commune, NATURE_LIVRET_A, [pid], adult, may_close=False)
        if rng.random() < _BOX:
            holders = [pid, spouse] if spouse is not None and rng.random() < 0.5 else [pid]
            self.account(main, commune, NATURE_COFFRE, holders, adult)
        self.living.append(pid)

    def _close_by_transfer(self, cid: int) -> dt.date | None:
        """Close account ``cid`` for a transfer; the day it closed, or None when it was
        opened too recently to have moved (it stays open)."""
        opened = self.w.opened_on(cid)
        low = max(opened + dt.timedelta(days=365), dt.date(self.year - 10, 1, 1))
        high = dt.date(self.year - 1, 12, 31)
        if low >= high:
            return None
        closed = self.day_between(low, high)
        self.w.account_row(cid).update(date_cloture=closed, motif_cloture="04")
        return closed

    def deceased(self, spis: set[str], names: Sequence[str], firsts: Sequence[str]) -> None:
        """A person who died between N-9 and N-4: accounts closed for the death, or left in
        a succession (an heir as ayant droit)."""
        rng, year = self.rng, self.year
        died = self.day_between(dt.date(year - 9, 1, 1), dt.date(year - 4, 12, 31))
        born = self.day_between(dt.date(died.year - 100, 1, 1), dt.date(died.year - 70, 12, 31))
        commune = rng.choice(COMMUNES)
        spi = _fresh_spi(rng, spis)
        person = {
            "spi": spi,
            "sexe": rng.choice("MF"),
            "nom_naissance": rng.choice(names),
            "nom_usage": None,
            "prenoms": rng.choice(firsts),
            "date_naissance": born,
            "code_pays_naissance": FRANCE,
            "code_dept_naissance": commune.department,
            "code_commune_naissance": commune.cog,
            "lieu_naissance": commune.name,
            "adresse": adresse_reponse(
                voie=f"{rng.randint(1, 90)} {rng.choice(_STREETS)}", commune=commune.cog
            ),
        }
        pid = self.w.person(person, date_deces=died)
        main = rng.choices(_NETWORK, _NETWORK_WEIGHTS)[0]
        adult = dt.date(max(born.year + 18, year - 35), 1, 1)
        end = died - dt.timedelta(days=30)
        unsettled = rng.random() < 0.2
        heir = rng.choice(self.living) if self.living else None
        for nature in (NATURE_COURANT, NATURE_LIVRET_A):
            opened = self.day_between(adult, max(adult, end))
            closed = None if unsettled else died + dt.timedelta(days=rng.randint(40, 240))
            cid = self.w.account(
                main,
                commune.cog,
                nature,
                opened,
                closed=closed,
                motif_cloture="03",
                succession=unsettled,
            )
            self.w.hold(cid, "TIT", pp=pid, debut=opened)
            if unsettled and heir is not None:
                self.w.hold(cid, "AYD", pp=heir, debut=died)

    def _designation(
        self, category: str, firsts: Sequence[str]
    ) -> tuple[str, str | None, str | None]:
        """(raison sociale, sigle, enseigne) of a generated legal person."""
        rng = self.rng
        last = rng.choice(self.names)
        activity = rng.choice(_ACTIVITIES)
        sigle: str | None = None
        enseigne: str | None = None
        if category == "1000":
            name = f"{last} {rng.choice(firsts)}"
            if rng.random() < 0.5:
                enseigne = f"{activity} {last}"
        elif category == "9220":
            name = f"ASSOCIATION {rng.choice(('SPORTIVE', 'CULTURELLE', 'DES AMIS'))} " + (
                rng.choice(_PLACES)
            )
            sigle = "".join(word[0] for word in name.split() if len(word) > 2)
        elif category == "6540":
            name = f"SCI {last} {rng.choice(_PLACES)}"
        else:
            pattern = rng.randrange(4)
            name = (
                f"{last}",
                f"{last} ET FILS",
                f"{last} {rng.choice(self.names)}",
                f"{activity} {last}",
            )[pattern]
            if rng.random() < 0.25 and len(name.split()) > 1:
                sigle = "".join(word[0] for word in name.split() if word != "ET")
            if rng.random() < 0.4:
                enseigne = f"{activity} {rng.choice(_PLACES)}"
            name = f"{name} {_LEGAL_FORM[category]}"
        return name, sigle, enseigne

    def company(self, firsts: Sequence[str]) -> None:
        rng, w = self.rng, self.w
        category = rng.choices(_CATEGORIES, _CATEGORY_WEIGHTS)[0]
        name, sigle, enseigne = self._designation(category, firsts)
        while designation_key(name) in _RESERVED or sigle in _RESERVED:
            name, sigle, enseigne = self._designation(category, firsts)
        self.w.companies += 1
        siren = siren_of(10_000_000 + self.w.companies * 7 + rng.randrange(7))
        owners: list[int] = []
        if category in _WITH_OWNERS and self.living:
            owners = rng.sample(self.living, min(len(self.living), rng.choice((1, 1, 2, 3))))
        manager = owners[0] if owners else (rng.choice(self.living) if self.living else None)
        created = dt.date(self.year - rng.randint(1, 30), rng.randint(1, 12), rng.randint(1, 28))
        establishments = rng.choices((1, 2, 3), (80, 15, 5))[0]
        for nic in range(1, establishments + 1):
            commune = rng.choice(COMMUNES)
            pm = w.company(
                siret=siret_of(siren, nic * 10 + rng.randrange(10)),
                raison_sociale=name,
                sigle=sigle,
                enseigne=enseigne,
                categorie=category,
                voie=f"{rng.randint(1, 120)} {rng.choice(_STREETS)}",
                commune=commune.cog,
            )
            bank = rng.choices(_NETWORK, _NETWORK_WEIGHTS)[0]
            natures = [NATURE_COURANT]
            if category == "9220":
                natures.append(NATURE_LIVRET_A)
                if rng.random() < 0.02:
                    natures.append(NATURE_LIVRET_A)  # multi-holding
            elif rng.random() < 0.3:
                natures.append(rng.choice((2, 9, 10)))
            for k, nature in enumerate(natures):
                at = bank if k < 2 else rng.choice([b for b in _NETWORK if b is not bank])
                opened = self.day_between(created, dt.date(self.year - 1, 12, 31))
                closed = self.closing(opened) if k else None
                cid = w.account(
                    at,
                    commune.cog,
                    nature,
                    opened,
                    caracteristique=2,
                    closed=closed,
                    motif_cloture="01",
                    fiscal_delay=rng.randint(2, 28),
                )
                w.hold(cid, "TIT", pm=pm, debut=opened)
                if manager is not None and category != "1000":
                    w.hold(cid, "MAN", pp=manager, debut=opened)
                for owner in owners:
                    w.hold(cid, "BEF", pp=owner, debut=opened)


def _fresh_spi(rng: random.Random, used: set[str]) -> str:
    while True:
        body = str(rng.randrange(1_000_000_000, 3_000_000_000))
        spi = f"{body}{nif.calc_check_digits(body)}"
        if spi not in used:
            used.add(spi)
            return spi


def couples(situations: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Each declarant's spouse (or partner) in their latest situation."""
    latest: dict[str, tuple[int, int, Mapping[str, Any]]] = {}
    for row in situations:
        rank = (row["annrev"], row["rang"])
        if row["spi"] not in latest or rank > latest[row["spi"]][:2]:
            latest[row["spi"]] = (row["annrev"], row["rang"], row["record"])
    spouses: dict[str, str] = {}
    for spi, (_annrev, _rang, record) in latest.items():
        first, second = record.get("spiDec1"), record.get("spiDec2")
        if first and second and spi in (first, second):
            spouses[spi] = str(second if spi == first else first)
    return spouses


def generate_bank_file(
    persons: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    reference_year: int,
    store: str,
    spouses: Mapping[str, str] | None = None,
    with_personas: bool = True,
    start: Offsets | None = None,
) -> BankFile:
    """The bank file of ``persons`` (``person`` rows, the Impôt Particulier population's or
    ``synthetic_persons``'): personas' fixed accounts, every other person's drawn ones,
    deceased holders, legal persons. A batch after the first starts at the previous one's
    ``next`` offsets (and should leave the personas out)."""
    from faker.providers.person.fr_FR import Provider as Names

    rng = random.Random(f"{seed}/ficoba")  # noqa: S311 — reproducible fictive data
    w = _Writer(store, reference_year, start)
    spouses = spouses or {}
    death = dt.date(reference_year - 1, *ir.DEATH)
    pids: dict[str, int] = {}
    for row in persons:
        if with_personas and row["spi"] == ir.NO_TAX.spi:
            continue  # Chloé BLANC holds nothing: she is not in the file
        died = death if with_personas and row["spi"] == ir.DECEASED.spi else None
        pids[row["spi"]] = w.person(row, died)
    used = set(pids)
    if with_personas:
        for key, row in _persona_persons(store):
            pids[key] = w.person(row)
        _Personas(w, pids).build()
    gen = _Generated(w, rng)
    for spi, pid in pids.items():
        if with_personas and (spi in ir.PERSONA_SPIS or spi in _FICOBA_ONLY):
            continue
        spouse = pids.get(spouses.get(spi, ""))
        first = spouse is None or pid < spouse
        gen.person(pid, w.pp_row(pid), spouse, first)
    firsts = [canonical(n) for n in Names.first_names]
    names = [canonical(n) for n in Names.last_names]
    gen.names = names
    for _ in range(round(len(gen.living) * _DECEASED)):
        gen.deceased(used, names, firsts)
    for _ in range(len(gen.living) // _COMPANY_EVERY):
        gen.company(firsts)
    w.finish()
    w.file.next = w.offsets()
    return w.file


def synthetic_persons(
    count: int, *, seed: int, reference_year: int, start: int = 0
) -> list[dict[str, Any]]:
    """``count`` fictive ``person`` rows drawn quickly (the benchmark's population): the
    same shape as the Impôt Particulier population's, names from Faker's ``fr_FR`` lists,
    addresses from a pool. SPIs are distinct across batches (``start``: the persons drawn
    before)."""
    from faker.providers.person.fr_FR import Provider as Names

    rng = random.Random(f"{seed}/ficoba-persons")  # noqa: S311 — reproducible fictive data
    last = [canonical(n) for n in Names.last_names]
    male, female = list(Names.first_names_male), list(Names.first_names_female)
    addresses = []
    for _ in range(min(count, 20_000) or 1):
        commune = rng.choice(COMMUNES)
        voie = f"{rng.randint(1, 150)} {rng.choice(_STREETS)}"
        addresses.append(adresse_reponse(voie=voie, commune=commune.cog))
    oldest = dt.date(reference_year - 95, 1, 1).toordinal()
    span = 95 * 365 - 18 * 365
    out = []
    for i in range(count):
        # A bijection of the person's rank onto 10-digit bodies starting with 1 or 2.
        body = str(1_000_000_000 + (start + i + 1) * 7_919 % 2_000_000_000)
        sexe = rng.choice("MF")
        firsts = male if sexe == "M" else female
        prenoms = rng.choice(firsts) + (" " + rng.choice(firsts) if rng.random() < 0.4 else "")
        commune = rng.choice(COMMUNES)
        abroad = rng.random() < 0.1
        country = rng.choice(COUNTRIES).cog if abroad else FRANCE
        out.append(
            {
                "spi": f"{body}{nif.calc_check_digits(body)}",
                "sexe": sexe,
                "nom_naissance": rng.choice(last),
                "nom_usage": None,
                "prenoms": prenoms,
                "date_naissance": dt.date.fromordinal(oldest + rng.randrange(span)),
                "code_pays_naissance": country,
                "code_dept_naissance": None if abroad else commune.department,
                "code_commune_naissance": None if abroad else commune.cog,
                "lieu_naissance": None if abroad else commune.name,
                "adresse": rng.choice(addresses),
            }
        )
    return out


# --- writing -----------------------------------------------------------------------------------

TABLES: Final = (
    (FicobaEtablissement, "etablissements"),
    (FicobaGuichet, "guichets"),
    (FicobaNom, "noms"),
    (FicobaPersonnePhysique, "personnes_physiques"),
    (FicobaPersonneMorale, "personnes_morales"),
    (FicobaCompte, "comptes"),
    (FicobaDetention, "detentions"),
)


@dataclass(frozen=True, slots=True)
class BankFileReport:
    store: str
    personnes_physiques: int
    personnes_morales: int
    comptes: int
    detentions: int
    seconds: float


def insert_bank_file(session: Session, bank_file: BankFile, *, reference: bool = True) -> None:
    """Insert ``bank_file``'s rows (with the banks and branches when ``reference``: a
    later batch leaves them out)."""
    for model, attribute in TABLES if reference else TABLES[2:]:
        rows: list[dict[str, Any]] = getattr(bank_file, attribute)
        table = cast(Table, model.__table__)
        for start in range(0, len(rows), _INSERT_CHUNK):
            session.execute(insert(table), rows[start : start + _INSERT_CHUNK])


def write_bank_file(session: Session, bank_file: BankFile) -> None:
    """Replace ``bank_file.store``'s FICOBA rows by ``bank_file``'s, in ``session``'s
    transaction."""
    store = bank_file.store
    for model, _attribute in reversed(TABLES):
        session.execute(delete(model).where(model.store == store))
    insert_bank_file(session, bank_file)


def seed_bank_file(
    session: Session, population: Population, *, seed: int, reference_year: int, store: str
) -> BankFileReport:
    """Generate and write the bank file of the Impôt Particulier ``population``, in
    ``session``'s transaction (``guichet sandbox seed`` and the first start)."""
    started = time.perf_counter()
    bank_file = generate_bank_file(
        population.persons,
        seed=seed,
        reference_year=reference_year,
        store=store,
        spouses=couples(population.situations),
    )
    write_bank_file(session, bank_file)
    report = BankFileReport(
        store=store,
        personnes_physiques=len(bank_file.personnes_physiques),
        personnes_morales=len(bank_file.personnes_morales),
        comptes=len(bank_file.comptes),
        detentions=len(bank_file.detentions),
        seconds=round(time.perf_counter() - started, 3),
    )
    log.info(
        "sandbox:ficoba:seeded store=%s persons=%d companies=%d accounts=%d holdings=%d "
        "seconds=%.3f",
        store,
        report.personnes_physiques,
        report.personnes_morales,
        report.comptes,
        report.detentions,
        report.seconds,
    )
    return report
