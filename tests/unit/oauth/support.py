"""Test certificates (a small CA, CA-issued and self-signed leaves) and habilitation factories."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy.orm import Session

from guichet.edge import thumbprint
from guichet.habilitation.models import (
    Certificate,
    Environment,
    Habilitation,
    HabilitationStatus,
    Organisation,
)

NOT_BEFORE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2027, 12, 31, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(Encoding.PEM).decode()

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.cert)

    @property
    def self_signed(self) -> bool:
        return self.cert.issuer == self.cert.subject


_KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _build(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer_name: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    # The extensions RFC 5280 path validation (``guichet.pki.verify``) requires.
    usage = {name: False for name in _KEY_USAGES}
    usage["key_cert_sign" if ca else "digital_signature"] = True
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**usage), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def make_ca(cn: str = "Guichet Test CA") -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _build(cn, key, _name(cn), key, ca=True, not_before=NOT_BEFORE, not_after=NOT_AFTER)
    return Issued(cert, key)


def issue(
    ca: Issued,
    cn: str,
    *,
    not_before: dt.datetime = NOT_BEFORE,
    not_after: dt.datetime = NOT_AFTER,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _build(
        cn, key, ca.cert.subject, ca.key, ca=False, not_before=not_before, not_after=not_after
    )
    return Issued(cert, key)


def self_signed(cn: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _build(cn, key, _name(cn), key, ca=False, not_before=NOT_BEFORE, not_after=NOT_AFTER)
    return Issued(cert, key)


def make_habilitation(
    session: Session,
    *,
    environment: Environment,
    now: dt.datetime,
    certificates: list[Issued] = (),  # type: ignore[assignment]
    status: HabilitationStatus = HabilitationStatus.ACTIVE,
    apis: list[str] | None = None,
    valid_until: dt.datetime | None = None,
) -> Habilitation:
    org = Organisation(
        siret=f"{secrets.randbelow(10**14):014d}", name="Commune de Test", created_at=now
    )
    hab = Habilitation(
        organisation=org,
        environment=environment,
        demarche="Quotient familial",
        status=status,
        apis=apis if apis is not None else ["impot_particulier", "r2p"],
        access_modes=["spi"],
        data_scopes=["dgfip_rfr", "dgfip_nbpart"],
        year_scopes=["dgfip_annee_n_moins_1"],
        ip_ranges=["127.0.0.1/32"],
        quotas={"impot_particulier": 120},
        valid_from=now - dt.timedelta(days=30),
        valid_until=valid_until,
        created_at=now,
        updated_at=now,
    )
    for c in certificates:
        hab.certificates.append(
            Certificate(
                thumbprint=c.thumbprint,
                subject=c.cert.subject.rfc4514_string(),
                issuer=c.cert.issuer.rfc4514_string(),
                not_before=c.cert.not_valid_before_utc,
                not_after=c.cert.not_valid_after_utc,
                self_signed=c.self_signed,
                pem=c.pem,
                created_at=now,
            )
        )
    session.add(hab)
    session.flush()
    return hab
