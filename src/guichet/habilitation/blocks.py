"""The request form's blocks, one typed model each: what a block holds, how the portal's
form fills it, and the rules it must meet at submission, each error naming its field.

A model is lenient for drafts (every field optional, but an unknown key or a value of the
wrong type is refused: ``draft``) and strict at submission (``check``, French messages per
field). The portal's form, the validation, the templates and the issuance all read these
models; the stored JSON (``habilitation_request.data``) is ``{block: model.stored()}``.
Adding a field is editing one model: its type, its form input (``FormInput``) and, if it
has rules, its ``check``.

Each API may bring its own perimeter (``PERIMETERS``): a subclass of ``Perimeter`` with its
fields, its form and its checks. The blocks follow the conventions: [000 §3.1.1] (démarche,
use, perimeter, volumetry, recipients, legal texts), [000 §3.1.2, §3.2, §3.4] and [003 art.
6] (production prerequisites), [003 art. 7] and [003 annexe 3 §3.1] (volumetry, IPs,
certificate, federation client_id), [004 §3.1] (the R.114-9-4 domain outside FranceConnect).
Checks read only the request (no database): what needs one (contact verification,
certificate facts, document ownership) is computed when a block is saved.
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Final, Protocol, Self
from urllib.parse import urlsplit

from dateutil.relativedelta import relativedelta
from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from guichet.catalog.products import (
    FICOBA_SEARCH_SCOPES,
    FRANCECONNECT_DATA_SCOPES,
    IR_DATA_SCOPES,
    PRODUCTS,
    YEAR_FALLBACK_SCOPE,
    YEAR_SCOPES,
)
from guichet.errors import BadRequest
from guichet.habilitation.models import AccessMode, Environment
from guichet.habilitation.request_models import SecurityKind
from guichet.pki import certificate_info


class Block(StrEnum):
    BASICS = "basics"
    LEGAL = "legal"
    PERIMETER = "perimeter"
    RECIPIENTS = "recipients"
    PERSONAL_DATA = "personal_data"
    CONTACTS = "contacts"
    TECHNICAL = "technical"
    TERMS = "terms"
    PRODUCTION = "production"


# Blocks every request has; production requests add ``PRODUCTION``.
COMMON_BLOCKS: Final = tuple(b for b in Block if b is not Block.PRODUCTION)


class LegalNature(StrEnum):
    LAW = "loi"
    DECREE = "decret"
    ORDER = "arrete"
    COUNCIL_DELIBERATION = "deliberation"  # a local authority's council [000 §3.1.1]
    OTHER = "autre"


class R11494Domain(StrEnum):
    """The ten domains of article R. 114-9-4 of the CRPA [004 §3.1]."""

    CONSOMMATION = "consommation"
    ENSEIGNEMENT = "enseignement"
    EMPLOI = "emploi"
    FAMILLE = "famille"
    IDENTITE = "identite"
    IMPOTS = "impots"
    JUSTICE = "justice"
    LOGEMENT = "logement"
    SANTE_SOLIDARITE = "sante_solidarite"
    TRANSPORT = "transport"


R11494_WORDING: Final = {
    R11494Domain.CONSOMMATION: "1° Consommation, notamment assurances, banques, surendettement, "
    "épargne",
    R11494Domain.ENSEIGNEMENT: "2° Enseignement et études supérieures",
    R11494Domain.EMPLOI: "3° Emploi, chômage, formation, santé et sécurité au travail, rupture "
    "contractuelle des relations de travail",
    R11494Domain.FAMILLE: "4° Famille, notamment enfance, protection des personnes, succession, "
    "union et séparation",
    R11494Domain.IDENTITE: "5° Identité, notamment état civil, titres d'identité sous réserve des "
    "dispositions de l'article R. 113-9, et élections",
    R11494Domain.IMPOTS: "6° Impôts, taxes et droits de douane",
    R11494Domain.JUSTICE: "7° Justice, notamment aide juridictionnelle",
    R11494Domain.LOGEMENT: "8° Logement et urbanisme, notamment les procédures relatives à "
    "l'achat d'un bien et aux aides financières y afférentes, copropriété, location et "
    "protection de l'habitat",
    R11494Domain.SANTE_SOLIDARITE: "9° Santé et solidarité, notamment aides sociales, handicap, "
    "perte d'autonomie, retraite, sécurité sociale et soins",
    R11494Domain.TRANSPORT: "10° Transport, notamment cartes de transport et permis de conduire",
}

RETENTION_WITHOUT_JUSTIFICATION: Final = 36  # months
MAX_HOMOLOGATION_MONTHS: Final = 60  # [003 annexe 5 §2]: at most 5 years
QUESTIONNAIRE_VALIDITY: Final = relativedelta(years=3)  # [000 §3.4.2]
MAX_ADDRESSES_PER_RANGE: Final = 65_536
CONTACT_ROLES: Final = ("controller", "dpo", "technical")
CONTACT_LABELS: Final = {
    "controller": "responsable de traitement",
    "dpo": "délégué à la protection des données",
    "technical": "responsable technique",
}


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str  # dotted path: "<block>.<field>[.<key>…]"
    message: str


def valid_email(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def homologation_expiry(start: dt.date, months: int) -> dt.datetime:
    return _at_midnight(start + relativedelta(months=months))


def questionnaire_expiry(day: dt.date) -> dt.datetime:
    return _at_midnight(day + QUESTIONNAIRE_VALIDITY)


# --- reading typed values ----------------------------------------------------------------------


def _at_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def _text(value: str | None) -> str:
    return value.strip() if value else ""


def _int(value: int | str | None) -> int | None:
    """A number typed in a form: an int, or its digits."""
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value.strip()) if value else None
    except ValueError:
        return None


def _strings(values: Sequence[str]) -> list[str]:
    return [v.strip() for v in values if v.strip()]


def _http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


# --- how a field is filled from the portal's form ----------------------------------------------


class Input(StrEnum):
    LINE = "line"  # one line of text
    TEXT = "text"  # a textarea
    LINES = "lines"  # a textarea, one item per line
    NUMBER = "number"  # one line: an int when it is one, else the text as typed
    CHECKBOX = "checkbox"  # "1" when ticked
    CHOICES = "choices"  # the ticked values of checkboxes of the same name


class FormReader(Protocol):
    """The submitted form, as the portal reads it (its text checks included)."""

    def text(self, name: str, limit: int, *, multiline: bool) -> str: ...

    def checked(self, name: str) -> bool: ...

    def values(self, name: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class FormInput:
    """A field's input in the block's form: its kind, its size, how many items it keeps."""

    kind: Input
    limit: int = 5000
    items: int = 0

    def read(self, form: FormReader, name: str) -> Any:
        if self.kind is Input.CHECKBOX:
            return form.checked(name)
        if self.kind is Input.CHOICES:
            return [str(v) for v in form.values(name)][: self.items]
        multiline = self.kind in (Input.TEXT, Input.LINES)
        text = form.text(name, self.limit, multiline=multiline).strip()
        if self.kind is Input.LINES:
            return [line.strip() for line in text.splitlines() if line.strip()][: self.items]
        if self.kind is Input.NUMBER:
            return int(text) if text.isdigit() and len(text) < 10 else text
        return text


Line = Annotated[str | None, FormInput(Input.LINE)]
Text = Annotated[str | None, FormInput(Input.TEXT)]
# A number as typed: an int, or the text when it is not one (the check says so).
Number = Annotated[StrictInt | str | None, FormInput(Input.NUMBER, 20)]
Checkbox = Annotated[StrictBool | None, FormInput(Input.CHECKBOX)]


def _refused(block: str, error: ValidationError) -> BadRequest:
    first = error.errors()[0]
    path = ".".join((block, *(str(step) for step in first["loc"])))
    if first["type"] == "extra_forbidden":
        return BadRequest(f"Champ inconnu : {path}.", field=path)
    return BadRequest(f"Valeur illisible : {path}.", field=path)


def _drop(raw: Any, loc: tuple[int | str, ...]) -> bool:
    """Remove what ``loc`` points at (as deep as it exists in ``raw``); False if nothing."""
    parent: Any = None
    key: int | str | None = None
    node = raw
    for step in loc:
        found = (isinstance(node, dict) and step in node) or (
            isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)
        )
        if not found:
            break
        parent, key, node = node, step, node[step]
    if parent is None or key is None:
        return False
    del parent[key]
    return True


def unset(model: BaseModel, name: str) -> None:
    """Forget a field of ``model``: its default again, and absent from what is stored."""
    default = type(model).model_fields[name].get_default(call_default_factory=True)
    setattr(model, name, default)
    model.model_fields_set.discard(name)


class BlockModel(BaseModel):
    """One block of the form. Lenient: every field optional, unknown keys refused."""

    model_config = ConfigDict(extra="forbid")

    block: ClassVar[Block]

    @classmethod
    def draft(cls, values: Mapping[str, Any] | BlockModel) -> Self:
        """The block as a partner saves it (incomplete is fine; a stray key is not)."""
        if isinstance(values, cls):
            return values.model_copy(deep=True)
        raw = values.stored() if isinstance(values, BlockModel) else dict(values)
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise _refused(cls.block.value, exc) from None

    @classmethod
    def read(cls, raw: Any) -> Self:
        """The stored block; what no longer fits the model is left out (never an error)."""
        data = copy.deepcopy(dict(raw)) if isinstance(raw, Mapping) else {}
        for _ in range(50):
            try:
                return cls.model_validate(data)
            except ValidationError as exc:
                if not any(_drop(data, e["loc"]) for e in exc.errors()):
                    break
        return cls()

    @classmethod
    def from_form(cls, form: FormReader, prefix: str = "") -> Self:
        """The block from its form: each field with a ``FormInput``, named by the field."""
        values: dict[str, Any] = {}
        for name, info in cls.model_fields.items():
            spec = next((m for m in info.metadata if isinstance(m, FormInput)), None)
            if spec is not None:
                values[name] = spec.read(form, f"{prefix}{name}")
        return cls.model_validate(values)

    def stored(self) -> dict[str, Any]:
        """The block as stored: the fields that were given, in the model's order."""
        return self.model_dump(mode="json", exclude_unset=True)

    def unset(self, name: str) -> None:
        """Forget a field (absent from the stored block, not ``null``)."""
        unset(self, name)

    def check(self, ctx: CheckContext) -> list[FieldError]:
        """The block's errors at submission; [] when complete."""
        return []

    # helpers for the checks

    def _path(self, name: str) -> str:
        return f"{self.block.value}.{name}"

    def _required(self, errors: list[FieldError], name: str, limit: int) -> str:
        """A required text field, its label taken from the field's ``title``."""
        label = type(self).model_fields[name].title
        text = _text(getattr(self, name))
        if not text:
            errors.append(FieldError(self._path(name), f"{label} : champ obligatoire."))
        elif len(text) > limit:
            errors.append(FieldError(self._path(name), f"{label} : {limit} caractères au plus."))
        return text


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a block's checks may read beyond the block: the request's API, environment,
    the other blocks (the technical block reads the access modes), and the time."""

    api: str
    environment: Environment
    now: dt.datetime
    form: RequestForm

    @property
    def production(self) -> bool:
        return self.environment is Environment.PRODUCTION


# --- the blocks ---------------------------------------------------------------------------------


class Basics(BlockModel):
    """[000 §3.1.1] the démarche and what the data are for."""

    block: ClassVar[Block] = Block.BASICS

    demarche: Line = Field(None, title="Nom de la démarche")
    description: Text = Field(None, title="Description de la démarche")
    intended_use: Text = Field(None, title="Usage des données")

    def check(self, ctx: CheckContext) -> list[FieldError]:
        errors: list[FieldError] = []
        self._required(errors, "demarche", 200)
        self._required(errors, "description", 5000)
        self._required(errors, "intended_use", 5000)
        return errors


class Legal(BlockModel):
    """[000 §3.1.1] the legal texts (or the council's deliberation), by URL or document;
    [000 §3.1.2] in production, the derogation to professional secrecy."""

    block: ClassVar[Block] = Block.LEGAL

    nature: Line = None
    reference: Line = Field(None, title="Référence du texte")
    url: Line = None
    secrecy_derogation: Line = Field(
        None,
        title="Dérogation au secret professionnel (par exemple L. 114-8 et R. 114-9-4 du CRPA)",
    )
    # The uploaded PDF (``RequestDocument.id``), checked to be this request's on save.
    document_id: Line = None
    local_authority: Checkbox = None

    def check(self, ctx: CheckContext) -> list[FieldError]:
        errors: list[FieldError] = []
        nature = _text(self.nature)
        if nature not in {n.value for n in LegalNature}:
            errors.append(
                FieldError(
                    "legal.nature",
                    "Nature du texte : choisissez loi, décret, arrêté, délibération ou autre.",
                )
            )
        elif self.local_authority is True and nature != LegalNature.COUNCIL_DELIBERATION:
            errors.append(
                FieldError(
                    "legal.nature",
                    "Nature du texte : une collectivité fonde sa demande sur la délibération de "
                    "son conseil.",
                )
            )
        self._required(errors, "reference", 500)
        url, document = _text(self.url), _text(self.document_id)
        if url and not _http_url(url):
            errors.append(FieldError("legal.url", "Adresse du texte : une URL http(s) complète."))
        if not url and not document:
            errors.append(
                FieldError("legal.url", "Adresse du texte : indiquez son URL ou joignez-le en PDF.")
            )
        if ctx.production and not ctx.form.perimeter.asks_secrecy_derogation:
            self._required(errors, "secrecy_derogation", 500)
        return errors


class Perimeter(BlockModel):
    """The data an API's habilitation would grant, each justified as strictly necessary
    [000 §3.1.1] and labelled as the user reads it [003 annexe 1]. An API with more to
    choose (access modes, years…) subclasses it and registers it in ``PERIMETERS``."""

    block: ClassVar[Block] = Block.PERIMETER
    # The scopes the form offers (the checks use the product's, from the catalogue).
    offered: ClassVar[frozenset[str]] = frozenset()
    # Whether the perimeter asks for the derogation to professional secrecy itself (then the
    # legal block does not ask for it again in production).
    asks_secrecy_derogation: ClassVar[bool] = False

    # scope → why it is strictly necessary
    data_scopes: dict[str, str] = Field(default_factory=dict)
    # scope → its literal label, as the user reads it
    labels: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def from_form(cls, form: FormReader, prefix: str = "") -> Self:
        chosen = [s for s in form.values("data_scopes") if s in cls.offered]
        scopes = {s: form.text(f"justification_{s}", 5000, multiline=True).strip() for s in chosen}
        labels = {s: form.text(f"label_{s}", 400, multiline=False).strip() for s in chosen}
        base = super().from_form(form, prefix)
        return cls.model_validate({"data_scopes": scopes, "labels": labels, **base.stored()})

    def access_modes_chosen(self) -> list[str]:
        """The access modes the partner chose (none, for an API without them)."""
        return []

    def year_scopes_chosen(self) -> list[str]:
        """The revenue years the partner chose (none, for an API without them)."""
        return []

    def granted_scopes(self) -> list[str]:
        """The data scopes the habilitation grants: those chosen."""
        return sorted(self.data_scopes)

    def check(self, ctx: CheckContext) -> list[FieldError]:
        return self._check_scopes(ctx) + self._check_labels()

    def _check_scopes(self, ctx: CheckContext) -> list[FieldError]:
        product = PRODUCTS.get(ctx.api)
        known_scopes = product.data_scopes if product else frozenset()
        errors: list[FieldError] = []
        if not self.data_scopes:
            errors.append(
                FieldError(
                    "perimeter.data_scopes", "Données demandées : choisissez-en au moins une."
                )
            )
        for scope, justification in sorted(self.data_scopes.items()):
            if scope not in known_scopes:
                errors.append(
                    FieldError(f"perimeter.data_scopes.{scope}", f"Donnée inconnue : {scope}.")
                )
            elif not justification.strip():
                errors.append(
                    FieldError(
                        f"perimeter.data_scopes.{scope}",
                        "Justifiez en quoi cette donnée est strictement nécessaire à la démarche.",
                    )
                )
        return errors

    def _check_labels(self) -> list[FieldError]:
        errors: list[FieldError] = []
        for scope in sorted(self.data_scopes):
            label = self.labels.get(scope, "").strip()
            if not label:
                errors.append(
                    FieldError(
                        f"perimeter.labels.{scope}",
                        "Libellé : écrivez la donnée telle que l'usager la lira.",
                    )
                )
            elif len(label) > 200:
                errors.append(
                    FieldError(f"perimeter.labels.{scope}", "Libellé : 200 caractères au plus.")
                )
        for scope in sorted(set(self.labels) - set(self.data_scopes)):
            errors.append(
                FieldError(
                    f"perimeter.labels.{scope}", "Libellé d'une donnée qui n'est pas demandée."
                )
            )
        return errors


class ImpotParticulierPerimeter(Perimeter):
    """API Impôt Particulier: besides the data, the access modes, the revenue years and,
    outside FranceConnect, the R.114-9-4 domain [004 §3.1]."""

    offered: ClassVar[frozenset[str]] = IR_DATA_SCOPES

    access_modes: Annotated[list[str], FormInput(Input.CHOICES, items=5)] = Field(
        default_factory=list
    )
    year_scopes: Annotated[list[str], FormInput(Input.CHOICES, items=5)] = Field(
        default_factory=list
    )
    r11494_domain: Line = None

    def access_modes_chosen(self) -> list[str]:
        return _strings(self.access_modes)

    def year_scopes_chosen(self) -> list[str]:
        return _strings(self.year_scopes)

    def check(self, ctx: CheckContext) -> list[FieldError]:
        errors = self._check_scopes(ctx)
        modes = self.access_modes_chosen()
        valid_modes = {m.value for m in AccessMode}
        if not modes:
            errors.append(
                FieldError("perimeter.access_modes", "Mode d'accès : choisissez-en au moins un.")
            )
        for mode in modes:
            if mode not in valid_modes:
                errors.append(
                    FieldError("perimeter.access_modes", f"Mode d'accès inconnu : {mode}.")
                )
        years = _strings(self.year_scopes)
        valid_years = set(YEAR_SCOPES) | {YEAR_FALLBACK_SCOPE}
        if not years:
            errors.append(
                FieldError(
                    "perimeter.year_scopes", "Années de revenus : choisissez-en au moins une."
                )
            )
        for year in years:
            if year not in valid_years:
                errors.append(
                    FieldError("perimeter.year_scopes", f"Année de revenus inconnue : {year}.")
                )
        errors += self._check_labels()
        product = PRODUCTS.get(ctx.api)
        known_scopes = product.data_scopes if product else frozenset()
        errors += _franceconnect_scopes(modes, sorted(self.data_scopes), known_scopes, years)
        outside_franceconnect = set(modes) - {AccessMode.FRANCECONNECT.value}
        if outside_franceconnect and _text(self.r11494_domain) not in set(R11494Domain):
            errors.append(
                FieldError(
                    "perimeter.r11494_domain",
                    "Hors FranceConnect, choisissez le domaine de la démarche parmi ceux de "
                    "l'article R. 114-9-4 du CRPA.",
                )
            )
        return errors


def _franceconnect_scopes(
    modes: list[str], scopes: list[str], known_scopes: frozenset[str], years: list[str]
) -> list[FieldError]:
    """FranceConnect as the only access mode: every data and year scope must be one the
    federation can carry (``catalog.products.FRANCECONNECT_DATA_SCOPES``), since the citizen
    consents to exactly those at the federation and the gateway serves nothing else in this
    mode. A catalogue scope outside that table (e.g. ``dgfip_montantimpot``) would be refused
    on every call. With another access mode too, such a scope stays useful (served by SPI or
    état civil, left out of FranceConnect-mode answers). Derived from the two tables, so a
    scope added to both is accepted at once."""
    if set(modes) != {AccessMode.FRANCECONNECT.value}:
        return []
    errors = [
        FieldError(
            f"perimeter.data_scopes.{scope}",
            "En mode FranceConnect, l'usager ne peut pas consentir à la transmission de "
            f"cette donnée ({scope}) : retirez-la, ou ajoutez un mode d'accès par SPI ou "
            "par état civil.",
        )
        for scope in scopes
        if scope in known_scopes and scope not in FRANCECONNECT_DATA_SCOPES
    ]
    errors += [
        FieldError(
            "perimeter.year_scopes",
            f"En mode FranceConnect, l'usager ne peut pas consentir à l'année {year}.",
        )
        for year in years
        if year in {*YEAR_SCOPES, YEAR_FALLBACK_SCOPE} and year not in FRANCECONNECT_DATA_SCOPES
    ]
    return errors


# [002 §4] each search type of API FICOBA and the data scope that grants it, one per type
# (``catalog.products.FICOBA_SEARCH_SCOPES``); their names are the catalogue's
# (``vocabulary.FICOBA_SEARCH_TYPES``).
# APIs whose habilitation needs a certificate from a trusted authority [002 §10: C4].
TRUSTED_CERTIFICATE_APIS: Final = frozenset({"ficoba"})
MAX_FICOBA_SEARCHES_PER_YEAR: Final = 100_000_000


class FicobaPerimeter(Perimeter):
    """API FICOBA [002]: its legal basis — the derogation to the professional secrecy of
    article 103 of the LPF that opens the file (article 1649 A of the CGI) to the partner
    [002 §2.1, §2.2.1, §3.1.1] —, the purpose of each search type asked for [002 §4], the
    volumes and the agents who will consult it [002 §5.2]. The habilitation grants exactly
    the search types chosen, each by its data scope (``FICOBA_SEARCH_SCOPES``): the gateway
    refuses any other type. No consent page, so no labels."""

    offered: ClassVar[frozenset[str]] = frozenset(FICOBA_SEARCH_SCOPES)
    asks_secrecy_derogation: ClassVar[bool] = True

    # search type → its purpose (why the démarche needs it)
    search_types: dict[str, str] = Field(default_factory=dict)
    secrecy_derogation: Annotated[str | None, FormInput(Input.LINE, 500)] = Field(
        None, title="Texte qui lève pour vous le secret professionnel (article 103 du LPF)"
    )
    annual_searches: Number = Field(None, title="Nombre de recherches par an")
    daily_peak: Number = Field(None, title="Pic de recherches par jour")
    agents_count: Number = Field(None, title="Nombre d'agents habilités à consulter FICOBA")
    agents_description: Text = Field(
        None, title="Agents concernés : services, fonctions et habilitation individuelle"
    )

    @classmethod
    def from_form(cls, form: FormReader, prefix: str = "") -> Self:
        chosen = [t for t in FICOBA_SEARCH_SCOPES if t in form.values("search_types")]
        purposes = {t: form.text(f"purpose_{t}", 5000, multiline=True).strip() for t in chosen}
        values = {
            name: spec.read(form, f"{prefix}{name}")
            for name, info in cls.model_fields.items()
            for spec in info.metadata
            if isinstance(spec, FormInput)
        }
        return cls.model_validate({"search_types": purposes, **values})

    def granted_scopes(self) -> list[str]:
        return sorted(
            FICOBA_SEARCH_SCOPES[t] for t in self.search_types if t in FICOBA_SEARCH_SCOPES
        )

    def check(self, ctx: CheckContext) -> list[FieldError]:
        errors: list[FieldError] = []
        if not self.search_types:
            errors.append(
                FieldError(
                    "perimeter.search_types",
                    "Types de recherche : choisissez au moins celui dont la démarche a besoin.",
                )
            )
        for kind, purpose in sorted(self.search_types.items()):
            if kind not in FICOBA_SEARCH_SCOPES:
                errors.append(
                    FieldError(f"perimeter.search_types.{kind}", "Type de recherche inconnu.")
                )
            elif not purpose.strip():
                errors.append(
                    FieldError(
                        f"perimeter.search_types.{kind}",
                        "Finalité : dites pourquoi la démarche a besoin de ce type de recherche.",
                    )
                )
            elif len(purpose.strip()) > 5000:
                errors.append(
                    FieldError(
                        f"perimeter.search_types.{kind}", "Finalité : 5000 caractères au plus."
                    )
                )
        if self.data_scopes or self.labels:
            errors.append(
                FieldError(
                    "perimeter.data_scopes", "L'API FICOBA se demande par type de recherche."
                )
            )
        self._required(errors, "secrecy_derogation", 500)
        annual, daily = _int(self.annual_searches), _int(self.daily_peak)
        if annual is None or not 1 <= annual <= MAX_FICOBA_SEARCHES_PER_YEAR:
            errors.append(
                FieldError(
                    "perimeter.annual_searches",
                    "Nombre de recherches par an : un nombre entier positif.",
                )
            )
        if daily is None or daily < 1:
            errors.append(
                FieldError(
                    "perimeter.daily_peak", "Pic de recherches par jour : un nombre entier positif."
                )
            )
        elif annual is not None and daily > annual:
            errors.append(
                FieldError(
                    "perimeter.daily_peak",
                    "Pic de recherches par jour : pas plus que le nombre de recherches par an.",
                )
            )
        agents = _int(self.agents_count)
        if agents is None or agents < 1:
            errors.append(
                FieldError(
                    "perimeter.agents_count",
                    "Nombre d'agents habilités : un nombre entier positif.",
                )
            )
        self._required(errors, "agents_description", 5000)
        return errors


# Each API's perimeter; an API not listed uses Impôt Particulier's (the first form).
PERIMETERS: Final[dict[str, type[Perimeter]]] = {
    "impot_particulier": ImpotParticulierPerimeter,
    "ficoba": FicobaPerimeter,
}


class Recipients(BlockModel):
    block: ClassVar[Block] = Block.RECIPIENTS

    services: Annotated[list[str], FormInput(Input.LINES, items=50)] = Field(default_factory=list)

    def check(self, ctx: CheckContext) -> list[FieldError]:
        errors: list[FieldError] = []
        services = _strings(self.services)
        if not services:
            errors.append(
                FieldError(
                    "recipients.services", "Services destinataires : indiquez-en au moins un."
                )
            )
        if any(len(s) > 200 for s in services):
            errors.append(
                FieldError(
                    "recipients.services", "Services destinataires : 200 caractères au plus."
                )
            )
        return errors


class PersonalData(BlockModel):
    block: ClassVar[Block] = Block.PERSONAL_DATA

    retention_months: Number = None
    retention_justification: Text = None

    def check(self, ctx: CheckContext) -> list[FieldError]:
        errors: list[FieldError] = []
        months = _int(self.retention_months)
        if months is None or not 1 <= months <= 1200:
            errors.append(
                FieldError(
                    "personal_data.retention_months",
                    "Durée de conservation : un nombre de mois entre 1 et 1200.",
                )
            )
        elif months > RETENTION_WITHOUT_JUSTIFICATION and not _text(self.retention_justification):
            errors.append(
                FieldError(
                    "personal_data.retention_justification",
                    f"Au-delà de {RETENTION_WITHOUT_JUSTIFICATION} mois, justifiez la durée de "
                    "conservation.",
                )
            )
        return errors


class Contact(BaseModel):
    """A person named by the request; ``verified`` is computed on save, never typed."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str | None, FormInput(Input.LINE, 200)] = None
    email: Annotated[str | None, FormInput(Input.LINE, 320)] = None
    verified: StrictBool | None = None

    def given(self) -> bool:
        return bool(self.model_fields_set)

    def address(self) -> str | None:
        """The address, if one was typed (not checked)."""
        return self.email.strip() if self.email and self.email.strip() else None


class Contacts(BlockModel):
    """[000 §4] the controller, the DPO (required in production) and the technical contact,
    each with a verified address (issue 4 §2)."""

    block: ClassVar[Block] = Block.CONTACTS

    controller: Contact | None = None
    dpo: Contact | None = None
    technical: Contact | None = None

    @classmethod
    def from_form(cls, form: FormReader, prefix: str = "") -> Self:
        contacts: dict[str, Any] = {}
        for role in CONTACT_ROLES:
            name = form.text(f"{role}_name", 200, multiline=False).strip()
            email = form.text(f"{role}_email", 320, multiline=False).strip()
            if name or email or role != "dpo":
                contacts[role] = {"name": name, "email": email}
        return cls.model_validate(contacts)

    def contact(self, role: str) -> Contact:
        """The contact of ``role``, empty when not named."""
        found = getattr(self, role)
        return found if isinstance(found, Contact) else Contact()

    def named(self) -> list[tuple[str, Contact]]:
        named = ((role, getattr(self, role)) for role in CONTACT_ROLES)
        return [(role, c) for role, c in named if isinstance(c, Contact)]

    def check(self, ctx: CheckContext) -> list[FieldError]:
        """The technical contact receives the credentials [000 §4] and so must have a
        verified portal account in the organisation; the controller and the DPO may instead
        confirm their address by the link mailed to it (``guichet.accounts.contacts``, which
        computes ``verified``)."""
        errors: list[FieldError] = []
        for role in CONTACT_ROLES:
            contact = self.contact(role)
            label = CONTACT_LABELS[role].capitalize()
            if not contact.given() and role == "dpo":
                if ctx.production:
                    errors.append(
                        FieldError(
                            "contacts.dpo",
                            "Délégué à la protection des données : obligatoire en production "
                            "(nom et adresse électronique).",
                        )
                    )
                continue
            name, email = _text(contact.name), _text(contact.email)
            if not name:
                errors.append(FieldError(f"contacts.{role}.name", f"{label} : nom obligatoire."))
            if not email or not valid_email(email):
                errors.append(
                    FieldError(f"contacts.{role}.email", f"{label} : adresse électronique valide.")
                )
            elif role == "technical" and contact.verified is not True:
                errors.append(
                    FieldError(
                        "contacts.technical.email",
                        "Responsable technique : son adresse doit être celle d'un compte vérifié "
                        "de l'organisation sur le portail (il y recevra les accès).",
                    )
                )
            elif contact.verified is not True:
                errors.append(
                    FieldError(
                        f"contacts.{role}.email",
                        f"{label} : adresse non confirmée. Un lien de confirmation lui a été "
                        "envoyé ; renvoyez-le depuis le bloc Contacts s'il a expiré.",
                    )
                )
        return errors


class CertificateFacts(BaseModel):
    """The client certificate as read on save (``technical.certificate``)."""

    model_config = ConfigDict(extra="forbid")

    thumbprint: str
    subject: str
    issuer: str
    not_before: str
    not_after: str
    self_signed: bool
    # Whether it chains to the gateways' trust store (RFC 5280), when one was configured.
    trusted: bool | None = None


class Technical(BlockModel):
    """Outgoing IPs, client certificate, federation client_id [003 annexe 3 §3.1];
    volumetry [003 art. 7, 000 §9.2]."""

    block: ClassVar[Block] = Block.TECHNICAL

    ip_ranges: Annotated[list[str], FormInput(Input.LINES, items=50)] = Field(default_factory=list)
    certificate_pem: Annotated[str | None, FormInput(Input.TEXT, 20000)] = None
    volumetry_per_minute: Number = None
    volumetry_justification: Text = None
    annual_files: Number = None
    hourly_peak: Number = None
    federation_client_id: Annotated[str | None, FormInput(Input.LINE, 200)] = None
    federation_redirect_uris: Annotated[list[str], FormInput(Input.LINES, items=10)] = Field(
        default_factory=list
    )
    # Computed on save from ``certificate_pem``.
    certificate: CertificateFacts | None = None

    def volumetry(self) -> int:
        """The declared calls per minute (the habilitation's quota), once checked."""
        number = _int(self.volumetry_per_minute)
        if number is None:
            raise ValueError("technical.volumetry_per_minute is not a number")
        return number

    def check(self, ctx: CheckContext) -> list[FieldError]:
        errors: list[FieldError] = []
        ranges = _strings(self.ip_ranges)
        if not ranges:
            errors.append(
                FieldError(
                    "technical.ip_ranges", "Adresses IP sortantes : déclarez-en au moins une."
                )
            )
        for cidr in ranges:
            try:
                network = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                errors.append(
                    FieldError("technical.ip_ranges", f"Adresse ou plage invalide : {cidr}.")
                )
                continue
            if network.num_addresses > MAX_ADDRESSES_PER_RANGE:
                errors.append(
                    FieldError(
                        "technical.ip_ranges",
                        f"Plage trop large : {cidr} (déclarez les adresses de vos serveurs).",
                    )
                )
        errors += self._check_certificate(ctx)
        product = PRODUCTS.get(ctx.api)
        default = product.default_quota_per_minute if product else 0
        volumetry = _int(self.volumetry_per_minute)
        if volumetry is None or not 1 <= volumetry <= 100_000:
            errors.append(
                FieldError(
                    "technical.volumetry_per_minute",
                    "Volumétrie : un nombre d'appels par minute entre 1 et 100 000.",
                )
            )
        elif volumetry > default and not _text(self.volumetry_justification):
            errors.append(
                FieldError(
                    "technical.volumetry_justification",
                    f"Au-delà du quota par défaut ({default} appels par minute), justifiez la "
                    "volumétrie (pics de charge, nombre de dossiers, périodicité).",
                )
            )
        if ctx.api == "impot_particulier":
            for key, label in (
                ("annual_files", "Nombre de dossiers par an"),
                ("hourly_peak", "Pic de charge (demandes par heure)"),
            ):
                number = _int(getattr(self, key))
                if number is None or number < 1:
                    errors.append(FieldError(f"technical.{key}", f"{label} : un nombre positif."))
        if AccessMode.FRANCECONNECT.value in ctx.form.perimeter.access_modes_chosen():
            errors += self._check_federation(ctx)
        return errors

    def _check_certificate(self, ctx: CheckContext) -> list[FieldError]:
        pem = _text(self.certificate_pem)
        if not pem:
            return [FieldError("technical.certificate_pem", "Certificat client : obligatoire.")]
        try:
            info = certificate_info(pem)
        except ValueError:
            return [FieldError("technical.certificate_pem", "Certificat client : PEM illisible.")]
        errors: list[FieldError] = []
        if not info.not_before <= ctx.now < info.not_after:
            errors.append(
                FieldError(
                    "technical.certificate_pem",
                    "Certificat client : hors de sa période de validité.",
                )
            )
        if ctx.api in TRUSTED_CERTIFICATE_APIS:
            errors += self._check_trusted_authority(ctx, info.self_signed)
        elif info.self_signed and ctx.production:
            errors.append(
                FieldError(
                    "technical.certificate_pem",
                    "Certificat client : en production, un certificat délivré par une "
                    "autorité de certification (RGS) est exigé.",
                )
            )
        return errors

    def _check_trusted_authority(self, ctx: CheckContext, self_signed: bool) -> list[FieldError]:
        """[002 §10, SPEC §7.2] DICP C4: the certificate is issued by a trusted authority,
        never self-signed, in every environment. Whether it chains to the trust store is
        computed on save (``certificate.trusted``)."""
        name = PRODUCTS[ctx.api].name if ctx.api in PRODUCTS else ctx.api
        if self_signed:
            message = (
                f"Certificat client : un certificat autosigné n'est pas accepté pour l'{name}. "
                "Fournissez un certificat délivré par une autorité de certification reconnue."
            )
        elif self.certificate is None or self.certificate.trusted is not True:
            message = (
                f"Certificat client : pour l'{name}, le certificat doit être délivré par une "
                "autorité de certification reconnue par le guichet ; celui-ci ne l'est pas."
            )
        else:
            return []
        return [FieldError("technical.certificate_pem", message)]

    def _check_federation(self, ctx: CheckContext) -> list[FieldError]:
        errors: list[FieldError] = []
        client_id = _text(self.federation_client_id)
        redirects = _strings(self.federation_redirect_uris)
        sandbox = ctx.environment is Environment.SANDBOX
        if not client_id and not (sandbox and redirects):
            errors.append(
                FieldError(
                    "technical.federation_client_id",
                    "Mode FranceConnect : indiquez le client_id FranceConnect de votre service"
                    + (
                        " (ou ses URL de retour, pour en créer un au bac à sable)."
                        if sandbox
                        else "."
                    ),
                )
            )
        for uri in redirects:
            if not _http_url(uri):
                errors.append(
                    FieldError(
                        "technical.federation_redirect_uris", f"URL de retour invalide : {uri}."
                    )
                )
        return errors


class Homologation(BaseModel):
    """The attestation d'homologation (RGS) [000 §3.4.1, 003 art. 6, annexe 5 §2]."""

    model_config = ConfigDict(extra="forbid")

    document_id: Annotated[str | None, FormInput(Input.LINE, 200)] = None
    authority: Annotated[str | None, FormInput(Input.LINE, 200)] = Field(
        default=None, title="Autorité d'homologation signataire"
    )
    signatory_name: Annotated[str | None, FormInput(Input.LINE, 200)] = Field(
        default=None, title="Nom du signataire"
    )
    signatory_function: Annotated[str | None, FormInput(Input.LINE, 200)] = Field(
        default=None, title="Fonction du signataire"
    )
    start_date: Annotated[str | None, FormInput(Input.LINE, 200)] = None  # AAAA-MM-JJ
    duration_months: Number = None

    def expiry(self) -> dt.datetime | None:
        start, months = _date(self.start_date), _int(self.duration_months)
        return None if start is None or months is None else homologation_expiry(start, months)

    def check(self, now: dt.datetime) -> list[FieldError]:
        errors: list[FieldError] = []
        p = "production.homologation"
        if not _text(self.document_id):
            errors.append(
                FieldError(f"{p}.document_id", "Attestation d'homologation : joignez le PDF.")
            )
        for name in ("authority", "signatory_name", "signatory_function"):
            label = type(self).model_fields[name].title
            text = _text(getattr(self, name))
            if not text:
                errors.append(FieldError(f"{p}.{name}", f"{label} : champ obligatoire."))
            elif len(text) > 200:
                errors.append(FieldError(f"{p}.{name}", f"{label} : 200 caractères au plus."))
        start = _date(self.start_date)
        months = _int(self.duration_months)
        if start is None:
            errors.append(FieldError(f"{p}.start_date", "Date d'homologation : AAAA-MM-JJ."))
        elif _at_midnight(start) > now:
            errors.append(FieldError(f"{p}.start_date", "Date d'homologation : pas dans le futur."))
        if months is None or not 1 <= months <= MAX_HOMOLOGATION_MONTHS:
            errors.append(
                FieldError(
                    f"{p}.duration_months", "Durée de l'homologation : de 1 à 60 mois (5 ans)."
                )
            )
        elif start is not None and homologation_expiry(start, months) <= now:
            errors.append(
                FieldError(
                    f"{p}.duration_months", "L'homologation est expirée : joignez la nouvelle."
                )
            )
        return errors


class Questionnaire(BaseModel):
    """The security questionnaire, outside the RGS; valid three years [000 §3.4.2]."""

    model_config = ConfigDict(extra="forbid")

    document_id: Annotated[str | None, FormInput(Input.LINE, 200)] = None
    date: Annotated[str | None, FormInput(Input.LINE, 20)] = None  # AAAA-MM-JJ

    def check(self, now: dt.datetime) -> list[FieldError]:
        errors: list[FieldError] = []
        p = "production.questionnaire"
        if not _text(self.document_id):
            errors.append(
                FieldError(f"{p}.document_id", "Questionnaire de sécurité : joignez le PDF.")
            )
        day = _date(self.date)
        if day is None:
            errors.append(FieldError(f"{p}.date", "Date du questionnaire : AAAA-MM-JJ."))
        elif _at_midnight(day) > now:
            errors.append(FieldError(f"{p}.date", "Date du questionnaire : pas dans le futur."))
        elif questionnaire_expiry(day) <= now:
            errors.append(
                FieldError(f"{p}.date", "Le questionnaire a plus de trois ans : renouvelez-le.")
            )
        return errors


def _group_from_form(model: type[BaseModel], form: FormReader, prefix: str) -> dict[str, Any]:
    return {
        name: spec.read(form, f"{prefix}{name}")
        for name, info in model.model_fields.items()
        for spec in info.metadata
        if isinstance(spec, FormInput)
    }


class Production(BlockModel):
    """[000 §3.1.2] recette fonctionnelle; [000 §3.2] formalities checkbox; [000 §3.4] the
    homologation attestation (authority, signatory name and function, date, duration ≤ 5
    years [003 art. 6, annexe 5 §2]) or, outside the RGS, the security questionnaire (≤ 3
    years)."""

    block: ClassVar[Block] = Block.PRODUCTION

    recette_confirmed: Checkbox = None
    recette_results: Text = None
    formalities_declared: Checkbox = None
    security_kind: Annotated[str | None, FormInput(Input.LINE, 32)] = None
    homologation: Homologation = Field(default_factory=lambda: Homologation())
    questionnaire: Questionnaire = Field(default_factory=Questionnaire)

    @classmethod
    def from_form(cls, form: FormReader, prefix: str = "") -> Self:
        base = super().from_form(form, prefix).stored()
        base["homologation"] = _group_from_form(Homologation, form, "homologation_")
        base["questionnaire"] = _group_from_form(Questionnaire, form, "questionnaire_")
        return cls.model_validate(base)

    def kind(self) -> SecurityKind | None:
        try:
            return SecurityKind(_text(self.security_kind))
        except ValueError:
            return None

    def commitment(self) -> tuple[SecurityKind, dt.date, dt.datetime]:
        """The security commitment of a complete block: kind, start, expiry."""
        kind = self.kind()
        if kind is SecurityKind.HOMOLOGATION:
            start = _date(self.homologation.start_date)
            expires = self.homologation.expiry()
        else:
            start = _date(self.questionnaire.date)
            expires = questionnaire_expiry(start) if start else None
        if kind is None or start is None or expires is None:
            raise ValueError("incomplete production block")
        return kind, start, expires

    def check(self, ctx: CheckContext) -> list[FieldError]:
        errors: list[FieldError] = []
        if self.recette_confirmed is not True:
            errors.append(
                FieldError(
                    "production.recette_confirmed",
                    "Confirmez la réalisation de la recette fonctionnelle au bac à sable.",
                )
            )
        if not _text(self.recette_results):
            errors.append(
                FieldError(
                    "production.recette_results",
                    "Résultats de la recette fonctionnelle : à joindre.",
                )
            )
        if self.formalities_declared is not True:
            errors.append(
                FieldError(
                    "production.formalities_declared",
                    "Déclarez l'accomplissement des formalités relatives à la protection des "
                    "données personnelles (case à cocher).",
                )
            )
        kind = self.kind()
        if kind is SecurityKind.HOMOLOGATION:
            errors += self.homologation.check(ctx.now)
        elif kind is SecurityKind.QUESTIONNAIRE:
            errors += self.questionnaire.check(ctx.now)
        else:
            errors.append(
                FieldError(
                    "production.security_kind",
                    "Engagement de sécurité : joignez l'attestation d'homologation, ou le "
                    "questionnaire de sécurité si votre organisme ne relève pas du RGS.",
                )
            )
        return errors


# --- a whole request ---------------------------------------------------------------------------

# The model of each block with data (the terms are accepted, not typed); the perimeter's is
# the API's (``perimeter_model``).
BLOCK_MODELS: Final[dict[Block, type[BlockModel]]] = {
    Block.BASICS: Basics,
    Block.LEGAL: Legal,
    Block.PERIMETER: ImpotParticulierPerimeter,
    Block.RECIPIENTS: Recipients,
    Block.PERSONAL_DATA: PersonalData,
    Block.CONTACTS: Contacts,
    Block.TECHNICAL: Technical,
    Block.PRODUCTION: Production,
}


def perimeter_model(api: str) -> type[Perimeter]:
    return PERIMETERS.get(api, ImpotParticulierPerimeter)


def model_of(api: str, block: Block) -> type[BlockModel]:
    """The model of ``block`` in the form of ``api``."""
    if block is Block.PERIMETER:
        return perimeter_model(api)
    if block not in BLOCK_MODELS:
        raise BadRequest(
            "Les conditions d'utilisation s'acceptent, elles ne se saisissent pas.",
            field=block.value,
        )
    return BLOCK_MODELS[block]


@dataclass(frozen=True, slots=True)
class RequestForm:
    """A request's data, one model per block (a block never saved is an empty model)."""

    basics: Basics
    legal: Legal
    perimeter: Perimeter
    recipients: Recipients
    personal_data: PersonalData
    contacts: Contacts
    technical: Technical
    production: Production

    @classmethod
    def read(cls, api: str, data: Mapping[str, Any] | None) -> RequestForm:
        """The stored data (``habilitation_request.data``) as models."""
        data = data or {}
        return cls(
            basics=Basics.read(data.get(Block.BASICS.value)),
            legal=Legal.read(data.get(Block.LEGAL.value)),
            perimeter=perimeter_model(api).read(data.get(Block.PERIMETER.value)),
            recipients=Recipients.read(data.get(Block.RECIPIENTS.value)),
            personal_data=PersonalData.read(data.get(Block.PERSONAL_DATA.value)),
            contacts=Contacts.read(data.get(Block.CONTACTS.value)),
            technical=Technical.read(data.get(Block.TECHNICAL.value)),
            production=Production.read(data.get(Block.PRODUCTION.value)),
        )

    def block(self, block: Block | str) -> BlockModel:
        found = getattr(self, Block(block).value, None)
        if not isinstance(found, BlockModel):
            raise KeyError(block)
        return found
