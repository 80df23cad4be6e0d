"""API FICOBA v2: the provider's health check and seven searches over the bank-accounts file,
with the provider's request bodies and answers (its document ``FICOBA_API`` v2).

Each search is a ``POST`` of a ``DemandeRestit…`` document: the request's characteristics
(``dateDemande``, ``motif``, ``siretDemandeur``/``sirenDemandeur``, ``justification``,
echoed in ``caracteristiquesDemande``) and its ``criteresRecherche``, validated here before
any data is read (a 400 naming the member at fault, e.g. ``criteresRecherche.etatCivil.nom``).
The searches themselves are ``guichet.records.ficoba_search``'s, one per search type:

| operation | search types (journaled) |
| --- | --- |
| ``/comptes/numCpte`` | ``compte`` |
| ``/comptes/siretSiren`` | ``siren_siret`` |
| ``/comptes/spi`` | ``spi`` |
| ``/comptes/perPhy`` | ``personne_physique`` |
| ``/comptes/perPro`` | ``personne_morale`` |
| ``/comptes/verifIban`` | ``verification_iban_`` + ``personne_physique``, ``…morale``, ``siret`` |
| ``/comptes/multiDet`` | ``multi_detention_`` + the same three |

Nothing found is an answer, not an error: 200 with ``nombreReponses`` ``"0"`` and a
``messageInformatif``. An IBAN check answers whether the IBAN is in the file
(``verificationCompte.ibanExistant``, ``dateCloture`` when closed) and, in
``messageInformatif.code``, whether its holder or a co-holder is the person described
(``titulaire_concordant``, ``nombreReponses`` ``"1"``) or not (``titulaire_non_concordant``,
``"0"``), never the account itself.

The convention habilitates per search type [002 §4]: once the body is parsed, the search
type (the path's, or for ``verifIban`` and ``multiDet`` the one the body's indicator
chooses) must be granted by the habilitation (its data scope
``ficoba_recherche_<type>``, ``catalog.products.FICOBA_SEARCH_SCOPES``), else 403
``search_type_not_granted`` naming the type in words.

The journal gets the search type (a refusal's too, and a 400 of the parsing when the type
is known: ``search_type_of``) and the SPI (natural persons) or SIREN (legal persons) of
every person whose data the answer holds, as keyed pseudonyms (``CallContext.subjects``),
never the criteria.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session
from starlette.requests import Request

from guichet.apis.context import ApiDeps, ApiResponse, CallContext, OperationHandler
from guichet.catalog.products import FICOBA_MEDIA_TYPE, FICOBA_SEARCH_SCOPES
from guichet.catalog.vocabulary import search_type_name
from guichet.errors import ParameterInvalid, SearchTypeNotGranted
from guichet.records import ficoba_search as fs
from guichet.records.ficoba import QUALITES_TITULAIRE
from guichet.records.spi import parse_spi

MEDIA_TYPE: Final = FICOBA_MEDIA_TYPE
HEALTHY: Final = "L'API est opérationnelle"
# What each kind of answer releases, journaled as the data scopes returned.
RELEASED_ACCOUNTS: Final = ["ficoba_comptes"]
RELEASED_CHECK: Final = ["ficoba_verification_iban"]
RELEASED_MULTI: Final = ["ficoba_multi_detention"]

# The request's characteristics (the provider's ``DemandeRestit``), echoed as received.
_DEMANDE: Final = ("dateDemande", "motif", "siretDemandeur", "sirenDemandeur", "justification")
_DEMANDE_LENGTH: Final = 500
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_PARIS: Final = ZoneInfo("Europe/Paris")

Kind = str  # "personne_physique", "personne_morale" or "siret"
_KINDS_VERIF: Final = (
    ("recherchePP", "personne_physique"),
    ("recherchePM", "personne_morale"),
    ("rechercheSirenSiret", "siret"),
)
_KINDS_MULTI: Final = (
    ("recherchePP", "personne_physique"),
    ("recherchePM", "personne_morale"),
    ("rechercheSIRENSIRET", "siret"),
)


# --- parsing -----------------------------------------------------------------------------------


def _object(source: Mapping[str, Any], key: str, field: str) -> Mapping[str, Any] | None:
    """A member that must be a JSON object when present."""
    value = source.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ParameterInvalid("Ce membre doit être un objet JSON.", field=field)
    return value


def _document(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise ParameterInvalid(
            "Le corps de la requête doit être un objet JSON (la demande et ses critères)."
        )
    return body


def _demande(document: Mapping[str, Any]) -> dict[str, str]:
    """The request's characteristics, each a string; ``dateDemande`` AAAA-MM-JJ, the
    requester's SIRET and SIREN in digits."""
    found: dict[str, str] = {}
    for key in _DEMANDE:
        value = document.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > _DEMANDE_LENGTH:
            raise ParameterInvalid(
                f"Une chaîne de caractères de {_DEMANDE_LENGTH} caractères au plus.", field=key
            )
        found[key] = value
    date = found.get("dateDemande")
    if date:
        try:
            if not _DATE.fullmatch(date):
                raise ValueError(date)
            dt.date.fromisoformat(date)
        except ValueError:
            raise ParameterInvalid(
                "La date de la demande est une date existante au format AAAA-MM-JJ.",
                field="dateDemande",
            ) from None
    for key, size in (("siretDemandeur", 14), ("sirenDemandeur", 9)):
        value = found.get(key)
        if value and not (value.isdigit() and value.isascii() and len(value) == size):
            raise ParameterInvalid(f"Le {key[:5].upper()} compte {size} chiffres.", field=key)
    return found


def _criteres(document: Mapping[str, Any]) -> Mapping[str, Any]:
    criteres = _object(document, "criteresRecherche", "criteresRecherche")
    if criteres is None:
        raise ParameterInvalid(
            "Les critères de recherche sont obligatoires.", field="criteresRecherche"
        )
    return criteres


def _string(source: Mapping[str, Any], key: str, field: str) -> str | None:
    value = source.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ParameterInvalid("Ce critère doit être une chaîne de caractères.", field=field)
    return value


def _kind(criteres: Mapping[str, Any], indicators: Iterable[tuple[str, Kind]]) -> Kind:
    """The one search type whose indicator is ``O`` (each ``O``, ``N`` or absent)."""
    chosen: list[tuple[str, Kind]] = []
    names = []
    for key, kind in indicators:
        names.append(key)
        value = _string(criteres, key, f"criteresRecherche.{key}")
        flag = (value or "").strip().upper()
        if flag not in ("", "O", "N"):
            raise ParameterInvalid("Cet indicateur vaut O ou N.", field=f"criteresRecherche.{key}")
        if flag == "O":
            chosen.append((key, kind))
    if len(chosen) != 1:
        field = chosen[1][0] if len(chosen) > 1 else names[0]
        raise ParameterInvalid(
            f"Un et un seul des indicateurs {', '.join(names)} vaut O.",
            field=f"criteresRecherche.{field}",
        )
    return chosen[0][1]


def _natural(source: Mapping[str, Any], field: str, *, address: bool) -> fs.NaturalPersonCriteria:
    """The provider's ``etatCivil``, ``lieuNaissance`` (and ``domiciliation``) under ``field``."""
    return fs.NaturalPersonCriteria.from_provider(
        _object(source, "etatCivil", f"{field}.etatCivil"),
        _object(source, "lieuNaissance", f"{field}.lieuNaissance"),
        _object(source, "domiciliation", f"{field}.domiciliation") if address else None,
        field=field,
    )


def _legal(source: Mapping[str, Any], field: str, *, address: bool) -> fs.LegalPersonCriteria:
    return fs.LegalPersonCriteria.from_provider(
        _object(source, "designation", f"{field}.designation"),
        _object(source, "domiciliation", f"{field}.domiciliation") if address else None,
        field=field,
    )


@dataclass(frozen=True, slots=True)
class Search:
    """A parsed search: its type, the request's characteristics and the criteria (one of
    ``iban``, ``siret``/``siren``, ``numero_spi``, ``natural``, ``legal``)."""

    search_type: str
    demande: dict[str, str]
    iban: str | None = None
    siret: str | None = None
    siren: str | None = None
    numero_spi: str | None = None
    natural: fs.NaturalPersonCriteria | None = None
    legal: fs.LegalPersonCriteria | None = None
    nature: int | None = None
    kind: Kind | None = None


# --- answers -----------------------------------------------------------------------------------


def _message(code: str, message: str, now: dt.datetime) -> dict[str, str]:
    """A ``messageInformatif`` (the provider's ``ReponseErreur``)."""
    return {
        "code": code,
        "message": message,
        "horodatage": now.astimezone(_PARIS).isoformat(timespec="seconds"),
    }


NOTHING_FOUND: Final = ("aucune_reponse", "Aucune réponse ne correspond à ces critères.")


def _answer(
    search: Search, count: int, now: dt.datetime, message: tuple[str, str] | None = None
) -> dict[str, Any]:
    """The members every answer begins with."""
    answer: dict[str, Any] = {}
    if search.demande:
        answer["caracteristiquesDemande"] = dict(search.demande)
    answer["referenceDemande"] = str(uuid.uuid4())
    answer["nombreReponses"] = str(count)
    if message is None and count == 0:
        message = NOTHING_FOUND
    if message is not None:
        answer["messageInformatif"] = _message(*message, now)
    return answer


def _identifier(person: fs.NaturalPerson | fs.LegalPerson) -> str | None:
    """Whom the journal names (by pseudonym): a natural person's SPI, a company's SIREN."""
    if isinstance(person, fs.NaturalPerson):
        return person.spi
    return person.siren


def _about(
    ctx: CallContext,
    persons: Iterable[fs.NaturalPerson | fs.LegalPerson],
    accounts: Iterable[fs.Account] = (),
) -> None:
    """Every person the answer holds data about: the persons found, and everyone with a
    capacity on the accounts returned."""
    found = [*persons, *(h.personne for a in accounts for h in a.ayants_droit)]
    for person in found:
        identifier = _identifier(person)
        if identifier and identifier not in ctx.subjects:
            ctx.subjects.append(identifier)


# --- operations --------------------------------------------------------------------------------


def _authorize_search_type(ctx: CallContext, search_type: str) -> None:
    """The convention habilitates per search type [002 §4]: the habilitation must hold the
    type's data scope (``FICOBA_SEARCH_SCOPES``), else 403 naming the type."""
    scope = FICOBA_SEARCH_SCOPES.get(search_type)
    if ctx.habilitation is None or scope is None or scope not in ctx.habilitation.data_scopes:
        raise SearchTypeNotGranted(
            f"Votre habilitation ne couvre pas le type de recherche "
            f"« {search_type_name(search_type)} » ; il se demande par une nouvelle demande "
            "d'habilitation, avec sa finalité."
        )


class _FicobaOperation:
    # The search type the path gives; None when the body's indicator chooses it.
    search_type: str | None = None
    # verifIban, multiDet: each indicator of ``criteresRecherche`` and the type it chooses.
    indicators: tuple[tuple[str, Kind], ...] = ()
    prefix: str = ""

    def __init__(self, deps: ApiDeps) -> None:
        self._deps = deps

    def authorize(self, ctx: CallContext, params: Any) -> None:
        """The habilitation's API and the operation's scope are the chain's checks; the
        search type, known from here on (refusals included), must be one the habilitation
        grants."""
        if isinstance(params, Search):
            ctx.search_type = params.search_type
            _authorize_search_type(ctx, params.search_type)

    def search_type_of(self, body: Any) -> str | None:
        """The search type of a request refused while parsing, for the journal: the path's,
        or the one the body's indicator chooses when it is well-formed; None otherwise."""
        if self.search_type is not None:
            return self.search_type
        try:
            criteres = _criteres(_document(body))
            return f"{self.prefix}{_kind(criteres, self.indicators)}"
        except ParameterInvalid:
            return None

    def _path_type(self) -> str:
        assert self.search_type is not None
        return self.search_type

    def parse(self, request: Request, body: Any = None) -> Search:
        document = _document(body)
        return self.parse_criteria(_demande(document), _criteres(document))

    def parse_criteria(self, demande: dict[str, str], criteres: Mapping[str, Any]) -> Search:
        raise NotImplementedError

    async def _read(self, ctx: CallContext, read: Callable[[Session, str], Any]) -> Any:
        def run() -> Any:
            with self._deps.session_factory() as session:
                return read(session, ctx.environment.value)

        return await asyncio.to_thread(run)


class EtatSante:
    """``GET /etatSante`` (getInfo): the API is open (outside its closed hour, which the
    gateway answers 503 in the provider's ``ResultatErreurApiSante`` shape)."""

    def __init__(self, deps: ApiDeps) -> None:
        self._deps = deps

    def parse(self, request: Request, body: Any = None) -> None:
        return None

    def authorize(self, ctx: CallContext, params: Any) -> None:
        return None

    async def fetch(self, ctx: CallContext, params: Any) -> ApiResponse:
        return ApiResponse(body={"descriptif": HEALTHY}, media_type=MEDIA_TYPE)


class ParNumeroCompte(_FicobaOperation):
    """``POST /comptes/numCpte`` (rechercherCompteParNumCpte): the account of an IBAN, open
    or closed, and everyone with a capacity on it."""

    search_type = "compte"

    def parse_criteria(self, demande: dict[str, str], criteres: Mapping[str, Any]) -> Search:
        _string(criteres, "verificationCompte", "criteresRecherche.verificationCompte")
        iban = fs.parse_iban(criteres.get("iban"), "criteresRecherche.iban")
        return Search(self._path_type(), demande, iban=iban)

    async def fetch(self, ctx: CallContext, params: Search) -> ApiResponse:
        assert params.iban is not None
        iban = params.iban
        account: fs.Account | None = await self._read(
            ctx, lambda session, store: fs.search_by_iban(session, store, iban)
        )
        if account is None:
            return ApiResponse(_answer(params, 0, ctx.now), MEDIA_TYPE)
        _about(ctx, (), [account])
        ctx.data_scopes_returned = list(RELEASED_ACCOUNTS)
        answer = _answer(params, 1, ctx.now)
        answer["reponses"] = {"comptes": [account.provider()]}
        return ApiResponse(answer, MEDIA_TYPE)


def _natural_answers(answers: list[fs.NaturalPersonAnswer]) -> list[dict[str, Any]]:
    return [
        {
            "personneRecherche": a.personne.provider(a.score),
            "nombreComptes": str(len(a.comptes)),
            "comptes": [c.provider() for c in a.comptes],
        }
        for a in answers
    ]


def _legal_answers(answers: list[fs.LegalPersonAnswer]) -> list[dict[str, Any]]:
    return [
        {
            "personneRecherche": a.personne.provider(a.score),
            "nombreComptes": str(len(a.comptes)),
            "comptes": [c.provider() for c in a.comptes],
        }
        for a in answers
    ]


class _PersonSearch(_FicobaOperation):
    """A search whose answer is a list of persons, each with their accounts."""

    def search(self, session: Session, store: str, params: Search) -> list[Any]:
        raise NotImplementedError

    async def fetch(self, ctx: CallContext, params: Search) -> ApiResponse:
        found: list[fs.NaturalPersonAnswer] | list[fs.LegalPersonAnswer] = await self._read(
            ctx, lambda session, store: self.search(session, store, params)
        )
        for a in found:
            _about(ctx, [a.personne], a.comptes)
        answer = _answer(params, len(found), ctx.now)
        if found:
            ctx.data_scopes_returned = list(RELEASED_ACCOUNTS)
            if isinstance(found[0], fs.NaturalPersonAnswer):
                answer["reponses"] = _natural_answers(found)
            else:
                answer["reponses"] = _legal_answers(found)
        return ApiResponse(answer, MEDIA_TYPE)


class ParSiretSiren(_PersonSearch):
    """``POST /comptes/siretSiren`` (rechercherCompteParSiretSiren): the establishment of a
    SIRET, or every establishment of a SIREN, with its accounts."""

    search_type = "siren_siret"

    def parse_criteria(self, demande: dict[str, str], criteres: Mapping[str, Any]) -> Search:
        siret, siren = fs.parse_siren_siret(criteres.get("siret"), criteres.get("siren"))
        return Search(self._path_type(), demande, siret=siret, siren=siren)

    def search(self, session: Session, store: str, params: Search) -> list[Any]:
        return fs.search_by_siret_siren(session, store, siret=params.siret, siren=params.siren)


class ParSpi(_PersonSearch):
    """``POST /comptes/spi`` (rechercherComptesSpi): the person of a tax number and every
    account they have a capacity on."""

    search_type = "spi"

    def parse_criteria(self, demande: dict[str, str], criteres: Mapping[str, Any]) -> Search:
        spi = parse_spi(criteres.get("numeroSPI"), field="criteresRecherche.numeroSPI")
        return Search(self._path_type(), demande, numero_spi=spi)

    def authorize(self, ctx: CallContext, params: Any) -> None:
        # Whom the search is about, found or not, refused or not.
        if isinstance(params, Search) and params.numero_spi:
            ctx.subjects.append(params.numero_spi)
        super().authorize(ctx, params)

    def search(self, session: Session, store: str, params: Search) -> list[Any]:
        assert params.numero_spi is not None
        return fs.search_by_spi(session, store, params.numero_spi)


class PersonnePhysique(_PersonSearch):
    """``POST /comptes/perPhy`` (rechercherComptesPersonnePhysique): the persons an état
    civil, a birth place and an address describe, ranked by ``scoreAppariement``."""

    search_type = "personne_physique"

    def parse_criteria(self, demande: dict[str, str], criteres: Mapping[str, Any]) -> Search:
        natural = _natural(criteres, "criteresRecherche", address=True)
        return Search(self._path_type(), demande, natural=natural)

    def search(self, session: Session, store: str, params: Search) -> list[Any]:
        assert params.natural is not None
        return fs.search_natural_persons(session, store, params.natural)


class PersonneMorale(_PersonSearch):
    """``POST /comptes/perPro`` (rechercherComptesPerPro): the establishments a designation
    and an address describe, ranked by ``scoreAppariement``."""

    search_type = "personne_morale"

    def parse_criteria(self, demande: dict[str, str], criteres: Mapping[str, Any]) -> Search:
        legal = _legal(criteres, "criteresRecherche", address=True)
        return Search(self._path_type(), demande, legal=legal)

    def search(self, session: Session, store: str, params: Search) -> list[Any]:
        assert params.legal is not None
        return fs.search_legal_persons(session, store, params.legal)


class VerifierTitulaireIban(_FicobaOperation):
    """``POST /comptes/verifIban`` (rechercherCompteParNumCpte_1): is this IBAN in the file,
    and is its holder the natural person, legal person or establishment described?"""

    indicators = _KINDS_VERIF
    prefix = "verification_iban_"

    def parse_criteria(self, demande: dict[str, str], criteres: Mapping[str, Any]) -> Search:
        kind = _kind(criteres, self.indicators)
        iban = fs.parse_iban(criteres.get("iban"), "criteresRecherche.iban")
        search_type = f"{self.prefix}{kind}"
        if kind == "personne_physique":
            natural = _natural(criteres, "criteresRecherche", address=False)
            return Search(search_type, demande, iban=iban, natural=natural, kind=kind)
        if kind == "personne_morale":
            legal = _legal(criteres, "criteresRecherche", address=False)
            return Search(search_type, demande, iban=iban, legal=legal, kind=kind)
        siret, siren = fs.parse_siren_siret(criteres.get("siret"), criteres.get("siren"))
        return Search(search_type, demande, iban=iban, siret=siret, siren=siren, kind=kind)

    def _check(self, session: Session, store: str, params: Search) -> fs.IbanCheck:
        assert params.iban is not None
        if params.natural is not None:
            return fs.verify_iban_natural_person(session, store, params.iban, params.natural)
        if params.legal is not None:
            return fs.verify_iban_legal_person(session, store, params.iban, params.legal)
        return fs.verify_iban_siret(
            session, store, params.iban, siret=params.siret, siren=params.siren
        )

    async def fetch(self, ctx: CallContext, params: Search) -> ApiResponse:
        check: fs.IbanCheck = await self._read(
            ctx, lambda session, store: self._check(session, store, params)
        )
        verification = {"ibanExistant": "O" if check.iban_existant else "N"}
        if check.date_cloture is not None:
            verification["dateCloture"] = check.date_cloture.isoformat()
        if check.compte is None:
            message = ("iban_inconnu", "Cet IBAN n'est pas connu du fichier.")
        elif check.concordant:
            message = (
                "titulaire_concordant",
                "Le titulaire ou un cotitulaire de ce compte correspond à la personne décrite.",
            )
        else:
            message = (
                "titulaire_non_concordant",
                "Ni le titulaire ni un cotitulaire de ce compte ne correspond à la personne "
                "décrite.",
            )
        if check.compte is not None:
            # The answer says something of the account's holders: about them.
            _about(ctx, check.compte.holders(*QUALITES_TITULAIRE))
        ctx.data_scopes_returned = list(RELEASED_CHECK)
        answer = _answer(params, 1 if check.concordant else 0, ctx.now, message)
        answer["reponses"] = {"verificationCompte": verification}
        return ApiResponse(answer, MEDIA_TYPE)


class MultiDetention(_FicobaOperation):
    """``POST /comptes/multiDet`` (rechercherMultiDetention): the open accounts of a nature
    (every regulated nature without ``codeNatureCompte``) the person described holds."""

    indicators = _KINDS_MULTI
    prefix = "multi_detention_"

    def parse_criteria(self, demande: dict[str, str], criteres: Mapping[str, Any]) -> Search:
        kind = _kind(criteres, self.indicators)
        _string(criteres, "accordClient", "criteresRecherche.accordClient")
        nature = fs.parse_nature(criteres.get("codeNatureCompte"))
        search_type = f"{self.prefix}{kind}"
        field = "criteresRecherche"
        if kind == "personne_physique":
            member = _object(criteres, "criteresRecherchePhy", f"{field}.criteresRecherchePhy")
            natural = _natural(member or {}, f"{field}.criteresRecherchePhy", address=True)
            return Search(search_type, demande, natural=natural, nature=nature, kind=kind)
        if kind == "personne_morale":
            member = _object(criteres, "criteresRecherchePro", f"{field}.criteresRecherchePro")
            legal = _legal(member or {}, f"{field}.criteresRecherchePro", address=True)
            return Search(search_type, demande, legal=legal, nature=nature, kind=kind)
        member = _object(criteres, "criteresSiretSiren", f"{field}.criteresSiretSiren")
        siret, siren = fs.parse_siren_siret(
            (member or {}).get("siret"),
            (member or {}).get("siren"),
            f"{field}.criteresSiretSiren",
        )
        return Search(search_type, demande, siret=siret, siren=siren, nature=nature, kind=kind)

    def _holding(self, session: Session, store: str, params: Search) -> fs.MultiHolding:
        if params.natural is not None:
            return fs.multi_holding_natural_person(session, store, params.natural, params.nature)
        if params.legal is not None:
            return fs.multi_holding_legal_person(session, store, params.legal, params.nature)
        return fs.multi_holding_siret(
            session, store, siret=params.siret, siren=params.siren, nature=params.nature
        )

    async def fetch(self, ctx: CallContext, params: Search) -> ApiResponse:
        holding: fs.MultiHolding = await self._read(
            ctx, lambda session, store: self._holding(session, store, params)
        )
        accounts = holding.comptes
        _about(ctx, holding.personnes)
        answer = _answer(params, len(accounts), ctx.now)
        answer["getnRep"] = str(len(accounts))
        if accounts:
            ctx.data_scopes_returned = list(RELEASED_MULTI)
            answer["comptes"] = [a.provider_multi_detention() for a in accounts]
        return ApiResponse(answer, MEDIA_TYPE)


def build_operations(deps: ApiDeps) -> dict[str, OperationHandler]:
    """The handlers, keyed by the catalogue's operation names."""
    makers: dict[str, Callable[[ApiDeps], OperationHandler]] = {
        "ficoba_etat_sante": EtatSante,
        "ficoba_num_cpte": ParNumeroCompte,
        "ficoba_siret_siren": ParSiretSiren,
        "ficoba_spi": ParSpi,
        "ficoba_per_phy": PersonnePhysique,
        "ficoba_per_pro": PersonneMorale,
        "ficoba_multi_det": MultiDetention,
        "ficoba_verif_iban": VerifierTitulaireIban,
    }
    return {name: make(deps) for name, make in makers.items()}
