"""A family's FranceConnect journey in a real browser (Debian's Chromium through Playwright):
the example partner app (``examples/quotient_familial``) → the sandbox federation → an
identity provider's sign-in → the consent page → back to the partner → RFR, parts and
quotient shown; refusing consent and a mismatched identity too; then the exchange in the
journal, under the citizen's subject pseudonym."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from examples.quotient_familial.quotient import euros, quotient_familial, tranche_of
from playwright import sync_api as playwright_sync

from guichet.demo import DEMO_NAME, FC_DATA_LABELS, FC_DEMARCHE, ensure_franceconnect_demo
from guichet.pki import ensure_local_pki
from guichet.runtime import Runtime, open_runtime
from guichet.settings import Settings
from tests.functional.conftest import Product, _wait_ready, api_headers
from tests.support.postgres import free_port

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(
    os.environ.get("GUICHET_SCREENSHOTS_DIR") or Path(tempfile.gettempdir()) / "guichet-screenshots"
)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DUBOIS = "3000000019268"  # the federation's well-known test citizen (docs/sandbox.md)
BLANC = "3000000012261"  # Chloé BLANC: a sandbox person without any tax record
ORIGIN = "Direction générale des Finances publiques"
PERIMETER = (
    "Revenu fiscal de référence et nombre de parts, transmis par la Direction générale des "
    "Finances publiques, pour calculer votre quotient familial"
)

# Never a silent skip: without the browser, the suite fails and says why.
if not Path(CHROMIUM).exists():
    pytest.fail("browser tests need /usr/bin/chromium: run make test", pytrace=False)


@dataclass
class Demo:
    product: Product
    runtime: Runtime
    example_url: str
    config: dict[str, Any]


@pytest.fixture(scope="module")
def fc_product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    """``guichet run`` on free ports, SQLite, 200 households (as the ``product`` fixture)."""
    data_dir = tmp_path_factory.mktemp("guichet-fc")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
    env["GUICHET_DATA_DIR"] = str(data_dir)
    ports = [free_port() for _ in range(4)]
    names = ("--portal-port", "--sandbox-port", "--production-port", "--federation-port")
    options = [arg for name, port in zip(names, ports, strict=True) for arg in (name, str(port))]
    log_file = data_dir.parent / f"{data_dir.name}.log"
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "guichet", "run", "--households", "200", *options],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    product = Product(
        data_dir=data_dir,
        env=env,
        portal_url=f"http://127.0.0.1:{ports[0]}",
        sandbox_url=f"https://127.0.0.1:{ports[1]}",
        production_url=f"https://127.0.0.1:{ports[2]}",
        federation_url=f"http://127.0.0.1:{ports[3]}",
        db_url=f"sqlite:///{data_dir / 'guichet.db'}",
        proc=proc,
        log_file=log_file,
    )
    try:
        _wait_ready(product, time.monotonic() + 180)
        yield product
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def demo(fc_product: Product) -> Iterator[Demo]:
    """The example partner app on a free port, its redirect URI registered for that port."""
    product = fc_product
    port = free_port()
    example_url = f"http://127.0.0.1:{port}"
    settings = Settings(
        data_dir=product.data_dir,
        portal_port=int(product.portal_url.rsplit(":", 1)[1]),
        sandbox_port=int(product.sandbox_url.rsplit(":", 1)[1]),
        production_port=int(product.production_url.rsplit(":", 1)[1]),
        federation_port=int(product.federation_url.rsplit(":", 1)[1]),
    )
    runtime = open_runtime(settings, migrate=False)
    pki = ensure_local_pki(product.data_dir / "pki", runtime.clock.now(), hosts=["127.0.0.1"])
    # `guichet run` wrote the file for the default port; this adds the test's port.
    config_file = ensure_franceconnect_demo(runtime, pki, partner_url=example_url)
    config = json.loads(config_file.read_text())
    assert config["federation"]["redirect_uri"] == f"{example_url}/retour"
    assert config["federation"]["redirect_uris"] == [
        "http://127.0.0.1:8700/retour",
        f"{example_url}/retour",
    ]
    assert config["federation"]["issuer"] == product.federation_url
    assert config_file.stat().st_mode & 0o777 == 0o600
    # Idempotent: a second call keeps the same credentials and habilitation.
    assert ensure_franceconnect_demo(runtime, pki, partner_url=example_url) == config_file
    assert json.loads(config_file.read_text()) == config
    log_file = product.data_dir.parent / "quotient-familial.log"
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "examples.quotient_familial", "--config", str(config_file)],
            cwd=ROOT,
            env=product.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log_file.read_text()
            try:
                if httpx.get(example_url + "/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log_file.read_text()
            time.sleep(0.2)
        yield Demo(product, runtime, example_url, config)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        runtime.close()
        # The example never writes personal data to its output (no SPI, no names, no RFR).
        output = log_file.read_text(encoding="utf-8", errors="replace")
        for secret in (DUBOIS, BLANC, "DUBOIS", config["federation"]["client_secret"]):
            assert secret not in output


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def shot(page: Any, name: str, *, axe: bool = False) -> None:
    """A screenshot of the step; on the example's own pages, axe-core too (no serious or
    critical violation)."""
    if axe and AXE.exists():
        page.evaluate(AXE.read_text(encoding="utf-8"))  # through DevTools: CSP forbids scripts
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']}"
            for v in result["violations"]
            if v["impact"] in {"serious", "critical"}
        ]
        assert not bad, f"{name}: " + "\n".join(bad)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"franceconnect-{name}.png"), full_page=True)


def sign_in_and_reach_consent(
    page: Any, demo: Demo, spi: str, prefix: str, *, one_click: bool
) -> None:
    """Home → FranceConnect button → chooser → impots.gouv.fr → sign in → consent page."""
    page.goto(demo.example_url + "/")
    assert PERIMETER in " ".join(page.locator("#perimetre").inner_text().split())
    shot(page, f"{prefix}-01-accueil", axe=True)
    page.get_by_role("button", name="S'identifier avec FranceConnect").click()
    page.wait_for_url(demo.product.federation_url + "/interaction/*")
    assert "Ville de Démoville" in page.content()
    shot(page, f"{prefix}-02-choix-du-compte")
    page.get_by_role("link", name="impots.gouv.fr").click()
    page.wait_for_url("**/fi/impots-gouv")
    shot(page, f"{prefix}-03-impots-gouv")
    if one_click:
        page.get_by_role("button", name="Se connecter comme Angela Claire Louise DUBOIS").click()
    else:
        page.locator("#spi").fill(spi)
        page.locator("#password").fill("123")
        page.get_by_role("button", name="Se connecter", exact=True).click()
    page.wait_for_url("**/consent")
    text = " ".join(page.locator("main").inner_text().split())
    assert DEMO_NAME in text
    assert FC_DEMARCHE in text
    for label in FC_DATA_LABELS.values():
        assert page.get_by_text(label, exact=True).is_visible()
    assert ORIGIN in text
    shot(page, f"{prefix}-04-consentement")


def journal(product: Product) -> list[dict[str, Any]]:
    out = product.guichet("journal", "export", "--format", "jsonl").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def fc_entries(product: Product, demo: Demo) -> list[dict[str, Any]]:
    return [
        e
        for e in journal(product)
        if e["operation"].split()[-1] == "ir_assiettes_fc"
        and e["habilitation_id"] == demo.config["habilitation_id"]
    ]


def expected_by_spi(demo: Demo, spi: str, annrev: int) -> dict[str, Any]:
    """The same citizen's record through the SPI mode (the demo's first habilitation)."""
    product = demo.product
    with product.http(cert=product.demo_cert()) as client:
        token = product.token(client)
        r = client.get(
            f"/impotparticulier/1.0/spi/{spi}/situations/ir/assiettes/annrev/{annrev}",
            headers=api_headers(token),
        )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_family_consents_and_sees_its_quotient(demo: Demo, browser: Any) -> None:
    before = len(fc_entries(demo.product, demo))
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    sign_in_and_reach_consent(page, demo, DUBOIS, "accepte", one_click=True)
    page.get_by_role("button", name="J'accepte la transmission").click()
    page.wait_for_url(demo.example_url + "/retour?*")

    annrev = dt.datetime.now(ZoneInfo("Europe/Paris")).year - 1
    record = expected_by_spi(demo, DUBOIS, annrev)
    parts = Decimal(str(record["nbPart"]))
    qf = quotient_familial(record["rfr"], parts)
    assert page.get_by_role("heading", name=f"Calcul sur vos revenus {annrev}").is_visible()
    assert page.locator("#identite").inner_text() == "Angela Claire Louise DUBOIS"
    assert page.locator("#rfr").inner_text() == euros(record["rfr"], cents=False)
    assert page.locator("#parts").inner_text() == str(parts).replace(".", ",")
    assert page.locator("#qf").inner_text() == euros(qf)
    assert page.locator("#tranche").inner_text().startswith(tranche_of(qf).lettre + " (")
    # The example's only cookie is an opaque flow key (cookies ignore ports: the sandbox
    # federation's, on the same host, is left aside).
    cookies = {c["name"]: c["value"] for c in page.context.cookies(demo.example_url)}
    assert len(cookies["qf_parcours"]) == 43
    assert str(record["rfr"]) not in cookies["qf_parcours"]
    shot(page, "accepte-05-resultat", axe=True)

    # The provider's journal holds the exchange: FranceConnect mode, this citizen's
    # pseudonym (never the SPI), the data scopes released, outcome ok.
    entries = fc_entries(demo.product, demo)
    assert len(entries) == before + 1
    entry = entries[-1]
    assert entry["outcome"] == "ok"
    assert entry["http_status"] == 200
    assert entry["environment"] == "sandbox"
    assert entry["subject"] == demo.runtime.master.pseudonym(DUBOIS)
    assert set(entry["data_scopes"]) == {"dgfip_rfr", "dgfip_nbpart"}
    assert DUBOIS not in json.dumps(entries)

    # Signing out of FranceConnect brings the family back to the city's home page.
    page.get_by_role("button", name="Se déconnecter de FranceConnect").click()
    page.wait_for_url(demo.example_url + "/?*")
    assert page.locator("#perimetre").is_visible()
    assert "qf_parcours" not in {c["name"] for c in page.context.cookies(demo.example_url)}

    # The citizen then asks the provider's portal who read their data: the exchange is there.
    page.goto(demo.product.portal_url + "/mes-donnees")
    page.locator("a.fr-connect").click()
    page.wait_for_url(demo.product.federation_url + "/interaction/*")
    page.get_by_role("link", name="impots.gouv.fr").click()
    page.wait_for_url("**/fi/impots-gouv")
    page.get_by_role("button", name="Se connecter comme Angela Claire Louise DUBOIS").click()
    if "/consent" in page.url:
        page.get_by_role("button", name="J'accepte la transmission").click()
    page.wait_for_url(demo.product.portal_url + "/mes-donnees/echanges*")
    # The FranceConnect exchange, and the test's own SPI-mode read of the same record.
    listed = [" ".join(row.split()) for row in page.locator("table tbody tr").all_inner_texts()]
    fc_rows = [row for row in listed if FC_DEMARCHE in row]
    assert len(fc_rows) == 1
    assert DEMO_NAME in fc_rows[0]
    shot(page, "accepte-06-qui-a-consulte-mes-donnees", axe=True)
    page.close()


def test_refusing_consent_transmits_nothing(demo: Demo, browser: Any) -> None:
    before = len(fc_entries(demo.product, demo))
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    sign_in_and_reach_consent(page, demo, DUBOIS, "refus", one_click=True)
    page.get_by_role("button", name="Je refuse").click()
    page.wait_for_url(demo.example_url + "/retour?*")
    assert page.get_by_role(
        "heading", name="Vous avez refusé la transmission de vos données"
    ).is_visible()
    assert "aucune donnée n'a été transmise" in page.locator("#message").inner_text()
    assert page.locator("#rfr").count() == 0
    assert page.locator("#qf").count() == 0
    shot(page, "refus-05-message", axe=True)
    assert len(fc_entries(demo.product, demo)) == before  # the gateway was never called
    page.close()


def test_identity_without_tax_record_is_explained(demo: Demo, browser: Any) -> None:
    before = len(fc_entries(demo.product, demo))
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    sign_in_and_reach_consent(page, demo, BLANC, "sans-situation", one_click=False)
    page.get_by_role("button", name="J'accepte la transmission").click()
    page.wait_for_url(demo.example_url + "/retour?*")
    heading = "Aucune situation fiscale trouvée pour votre identité"
    assert page.get_by_role("heading", name=heading).is_visible()
    message = page.locator("#message").inner_text()
    assert ORIGIN in message
    assert "Aucune donnée n'a été transmise" in message
    assert page.locator("#rfr").count() == 0
    shot(page, "sans-situation-05-message", axe=True)
    # N-1, then N-2 (the deliberation's "à défaut"): two calls, two 404s, journaled.
    entries = fc_entries(demo.product, demo)[before:]
    assert [(e["outcome"], e["http_status"]) for e in entries] == [("not_found", 404)] * 2
    page.close()


@pytest.mark.parametrize(
    ("rfr", "parts", "qf", "lettre"),
    [
        (0, Decimal("1"), Decimal("0.00"), "A"),
        (5400, Decimal("1"), Decimal("450.00"), "A"),
        (16801, Decimal("2"), Decimal("700.04"), "C"),
        (31250, Decimal("1"), Decimal("2604.17"), "F"),
        (57000, Decimal("3"), Decimal("1583.33"), "E"),
        (38000, Decimal("2.5"), Decimal("1266.67"), "E"),
    ],
)
def test_the_deliberation_rule(rfr: int, parts: Decimal, qf: Decimal, lettre: str) -> None:
    assert quotient_familial(rfr, parts) == qf
    assert tranche_of(qf).lettre == lettre
