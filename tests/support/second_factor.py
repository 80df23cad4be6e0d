"""The second factor in tests (issue 14, C4): a software WebAuthn authenticator (a P-256 key
made with ``cryptography``, answers encoded as a real authenticator encodes them, verified by
``webauthn`` for real), TOTP codes, and the helpers that let existing tests sign staff in.

Staff and members of FICOBA organisations must give a second factor: tests enrol one
(``enrol_totp`` with ``TOTP_SECRET``) and pass it after the password (``pass_totp``), never
switch the rule off.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import struct
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.orm import Session
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

from guichet.accounts.second_factor import TOTP_STEP, add_totp_factor, totp_code, totp_step
from guichet.clock import FrozenClock
from guichet.secrets import MasterSecret

# A fixed seed, so that any test (and the browser) can compute the codes.
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
VERIFY_PATH = "/connexion/second-facteur"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
OPTIONS = re.compile(r'data-options="([^"]+)"')

# The last step each seed was used at, per frozen clock (each test has its own) or for the
# real one, so that a test never replays a code (the portal would rightly refuse it).
_frozen_steps: weakref.WeakKeyDictionary[FrozenClock, dict[str, int]] = weakref.WeakKeyDictionary()
_real_steps: dict[str, int] = {}


def enrol_totp(session: Session, master: MasterSecret, user_id: uuid.UUID, now: dt.datetime) -> str:
    """A confirmed TOTP factor with ``TOTP_SECRET`` for ``user_id``; returns the seed."""
    add_totp_factor(session, master, user_id, TOTP_SECRET, now)
    return TOTP_SECRET


def fresh_code(secret: str, clock: Any = None, account: str = "") -> str:
    """A code of ``secret`` not used yet by this process's tests (for ``account``: each
    factor remembers its own last step).

    The portal accepts the previous, current and next steps, once each: the code is the one
    after the last used, from the current step to the next; beyond, a frozen clock is moved
    on by a step and a real one is waited for.
    """
    now = clock.now() if clock is not None else dt.datetime.now(dt.UTC)
    frozen = isinstance(clock, FrozenClock)
    steps = _frozen_steps.setdefault(clock, {}) if frozen else _real_steps
    current = totp_step(now)
    key = f"{secret}/{account.casefold()}"
    # Never the previous step: a step boundary crossed between here and the portal's check
    # would put it out of the window (a refusal that depends on the second it ran).
    wanted = max(steps.get(key, current - 1) + 1, current)
    if wanted > current + 1:
        if isinstance(clock, FrozenClock):
            clock.advance(TOTP_STEP * (wanted - current - 1))
        else:
            time.sleep((wanted - 1) * TOTP_STEP - time.time() + 0.5)
    steps[key] = wanted
    return totp_code(secret, wanted)


def pass_totp(client: Any, secret: str = TOTP_SECRET, account: str = "") -> Any:
    """Gives the TOTP code on the second-factor page (a ``TestClient`` whose app is the
    portal): the answer of the code's form."""
    page = client.get(VERIFY_PATH)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found, page.text
    clock = client.app.state.second_factors.clock
    answer = client.post(
        VERIFY_PATH + "/code",
        data={"code": fresh_code(secret, clock, account), "csrf_token": found[1]},
    )
    assert answer.status_code == 303, answer.text
    return answer


ADD_PATH = "/second-facteur/ajout"
SEED_ON_PAGE = re.compile(r'<code id="cle-totp">([A-Z2-7 ]+)</code>')
# Seeds enrolled through the page by ``finish_sign_in``, by (portal app, address).
_enrolled: dict[tuple[int, str], str] = {}


def finish_sign_in(client: Any, answer: Any, email: str = "") -> Any:
    """After the password's answer (a ``TestClient`` on the portal): gives the second factor
    when the portal asks it (``TOTP_SECRET``, or the seed this helper enrolled for
    ``email``), or enrols a TOTP application through the page when it must be added, as a
    person would. Returns the answer that signs in (303), or ``answer`` when none was asked.
    """
    location = answer.headers.get("location", "") if answer.status_code == 303 else ""
    key = (id(client.app), email.casefold())
    if location == VERIFY_PATH:
        return pass_totp(client, _enrolled.get(key, TOTP_SECRET), email)
    if location == ADD_PATH:
        page = client.get(ADD_PATH)
        assert page.status_code == 200, page.text
        seed = SEED_ON_PAGE.search(page.text)
        token = CSRF.search(page.text)
        assert seed, page.text
        assert token, page.text
        secret = seed[1].replace(" ", "")
        _enrolled[key] = secret
        clock = client.app.state.second_factors.clock
        done = client.post(
            ADD_PATH + "/code",
            data={"code": fresh_code(secret, clock, email), "csrf_token": token[1]},
        )
        assert done.status_code == 200, done.text
        assert "Vos codes de secours" in done.text
        return done
    return answer


def give_totp_in_browser(page: Any, secret: str = TOTP_SECRET, account: str = "") -> None:
    """On the second-factor page of a Playwright ``page``: types the current code of
    ``secret`` and sends it (the browser journeys' staff)."""
    page.wait_for_url(f"**{VERIFY_PATH}")
    page.locator("#code").fill(fresh_code(secret, None, account))
    with page.expect_navigation(wait_until="load"):
        page.get_by_role("button", name="Valider le code").click()


def options_of(page_text: str) -> dict[str, Any]:
    """The WebAuthn options a page carries in its form's ``data-options``."""
    found = OPTIONS.search(page_text)
    assert found, "no WebAuthn options on the page"
    text = found[1].replace("&#34;", '"').replace("&quot;", '"').replace("&amp;", "&")
    loaded = json.loads(text)
    assert isinstance(loaded, dict)
    return loaded


@dataclass
class SoftwareAuthenticator:
    """A security key in software: one P-256 credential per registration, with a counter.

    It answers ``navigator.credentials.create``/``get`` options as a key does: attestation
    "none", authenticator data with the RP id's hash, flags and counter, an ECDSA signature
    over the authenticator data and the client data's hash.
    """

    origin: str
    credentials: dict[bytes, tuple[ec.EllipticCurvePrivateKey, str]] = field(default_factory=dict)
    counters: dict[bytes, int] = field(default_factory=dict)
    aaguid: bytes = b"\x00" * 16
    # Whether the key verified its holder (PIN, biometrics): the UV flag; a plain U2F key
    # without a PIN answers with presence only.
    user_verified: bool = True

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin},
            separators=(",", ":"),
        ).encode()

    def create(self, options: dict[str, Any], origin: str | None = None) -> str:
        """The registration credential (JSON) for ``options`` (as ``options_to_json`` wrote)."""
        rp_id = options["rp"]["id"]
        key = ec.generate_private_key(ec.SECP256R1())
        numbers = key.public_key().public_numbers()
        cose = cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )
        credential_id = secrets.token_bytes(32)
        self.credentials[credential_id] = (key, rp_id)
        self.counters[credential_id] = 0
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            # user present, user verified (unless told otherwise), attested credential data
            + bytes([0x45 if self.user_verified else 0x41])
            + struct.pack(">I", 0)
            + self.aaguid
            + struct.pack(">H", len(credential_id))
            + credential_id
            + cose
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        encoded_id = bytes_to_base64url(credential_id)
        return json.dumps(
            {
                "id": encoded_id,
                "rawId": encoded_id,
                "type": "public-key",
                "response": {
                    "clientDataJSON": bytes_to_base64url(client_data),
                    "attestationObject": bytes_to_base64url(attestation),
                    "transports": ["usb"],
                },
                "clientExtensionResults": {},
            }
        )

    def get(
        self,
        options: dict[str, Any],
        origin: str | None = None,
        *,
        counter: int | None = None,
        credential_id: bytes | None = None,
    ) -> str:
        """The authentication credential (JSON) answering ``options``; ``counter`` forces the
        signature counter (a cloned key's)."""
        allowed = [base64url_to_bytes(c["id"]) for c in options.get("allowCredentials", [])]
        chosen = credential_id or next(c for c in allowed if c in self.credentials)
        key, rp_id = self.credentials[chosen]
        self.counters[chosen] = counter if counter is not None else self.counters[chosen] + 1
        auth_data = (
            hashlib.sha256(options.get("rpId", rp_id).encode()).digest()
            + bytes([0x05 if self.user_verified else 0x01])  # user present, user verified
            + struct.pack(">I", self.counters[chosen])
        )
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        encoded_id = bytes_to_base64url(chosen)
        return json.dumps(
            {
                "id": encoded_id,
                "rawId": encoded_id,
                "type": "public-key",
                "response": {
                    "clientDataJSON": bytes_to_base64url(client_data),
                    "authenticatorData": bytes_to_base64url(auth_data),
                    "signature": bytes_to_base64url(signature),
                },
                "clientExtensionResults": {},
            }
        )
