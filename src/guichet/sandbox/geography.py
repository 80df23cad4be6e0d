"""Real INSEE COG codes (communes, countries) the fictive population is born and lives in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

FRANCE: Final = "99100"


@dataclass(frozen=True, slots=True)
class Commune:
    cog: str
    name: str
    postal_code: str

    @property
    def department(self) -> str:
        """The department code: three characters overseas (97x), two elsewhere (incl. 2A/2B)."""
        return self.cog[:3] if self.cog.startswith("97") else self.cog[:2]


@dataclass(frozen=True, slots=True)
class Country:
    cog: str
    name: str


COMMUNES: Final = tuple(
    Commune(*row)
    for row in (
        ("75107", "PARIS 07", "75007"),
        ("75111", "PARIS 11", "75011"),
        ("75115", "PARIS 15", "75015"),
        ("75118", "PARIS 18", "75018"),
        ("69381", "LYON 01", "69001"),
        ("69383", "LYON 03", "69003"),
        ("13201", "MARSEILLE 01", "13001"),
        ("13208", "MARSEILLE 08", "13008"),
        ("31555", "TOULOUSE", "31000"),
        ("06088", "NICE", "06000"),
        ("44109", "NANTES", "44000"),
        ("67482", "STRASBOURG", "67000"),
        ("34172", "MONTPELLIER", "34000"),
        ("33063", "BORDEAUX", "33000"),
        ("59350", "LILLE", "59000"),
        ("35238", "RENNES", "35000"),
        ("51454", "REIMS", "51100"),
        ("76351", "LE HAVRE", "76600"),
        ("42218", "SAINT-ETIENNE", "42000"),
        ("83137", "TOULON", "83000"),
        ("38185", "GRENOBLE", "38000"),
        ("21231", "DIJON", "21000"),
        ("49007", "ANGERS", "49000"),
        ("30189", "NIMES", "30000"),
        ("63113", "CLERMONT-FERRAND", "63000"),
        ("87085", "LIMOGES", "87000"),
        ("37261", "TOURS", "37000"),
        ("80021", "AMIENS", "80000"),
        ("57463", "METZ", "57000"),
        ("25056", "BESANCON", "25000"),
        ("66136", "PERPIGNAN", "66000"),
        ("45234", "ORLEANS", "45000"),
        ("14118", "CAEN", "14000"),
        ("76540", "ROUEN", "76000"),
        ("54395", "NANCY", "54000"),
        ("64445", "PAU", "64000"),
        ("29019", "BREST", "29200"),
        ("86194", "POITIERS", "86000"),
        ("2A004", "AJACCIO", "20000"),
        ("97411", "SAINT-DENIS", "97400"),
        ("92050", "NANTERRE", "92000"),
        ("93066", "SAINT-DENIS", "93200"),
        ("94028", "CRETEIL", "94000"),
        ("78646", "VERSAILLES", "78000"),
        ("17300", "LA ROCHELLE", "17000"),
        ("72181", "LE MANS", "72000"),
        ("74010", "ANNECY", "74000"),
        ("84007", "AVIGNON", "84000"),
        ("56260", "VANNES", "56000"),
        ("22278", "SAINT-BRIEUC", "22000"),
    )
)

COMMUNES_BY_COG: Final = {c.cog: c for c in COMMUNES}

COUNTRIES: Final = tuple(
    Country(*row)
    for row in (
        ("99109", "ALLEMAGNE"),
        ("99127", "ITALIE"),
        ("99131", "BELGIQUE"),
        ("99132", "ROYAUME-UNI"),
        ("99134", "ESPAGNE"),
        ("99139", "PORTUGAL"),
        ("99140", "SUISSE"),
        ("99350", "MAROC"),
        ("99351", "TUNISIE"),
        ("99352", "ALGERIE"),
        ("99404", "ETATS-UNIS"),
    )
)

COUNTRIES_BY_COG: Final = {c.cog: c for c in COUNTRIES}
