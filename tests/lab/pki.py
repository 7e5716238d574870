"""The lab's certificates and keys, made fresh for each lab with `cryptography`.

Three authorities, as on a kubeadm cluster: the cluster CA (serves the apiserver and the stand-in
virt-api, signs client certificates), the front-proxy CA (the aggregator's client certificate, which
an aggregated API server trusts to carry the user's identity) and the service-account signing key.
"""

import datetime
import ipaddress
from pathlib import Path
from typing import Iterable, Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)


def _new_key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organization: Optional[str] = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _write(path: Path, key, cert) -> None:
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path.with_suffix(".key").chmod(0o600)
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY))


def make_ca(path: Path, common_name: str) -> Tuple[object, x509.Certificate]:
    key = _new_key()
    cert = (_builder(_name(common_name), _name(common_name), key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    _write(path, key, cert)
    return key, cert


def load_ca(path: Path) -> Tuple[object, x509.Certificate]:
    """A CA that make_ca wrote (`<path>.key`, `<path>.crt`), to sign more certificates with later."""
    key = serialization.load_pem_private_key(path.with_suffix(".key").read_bytes(), password=None)
    return key, x509.load_pem_x509_certificate(path.with_suffix(".crt").read_bytes())


def make_leaf(path: Path, ca, common_name: str, organization: Optional[str] = None,
              hosts: Iterable[str] = (), server: bool = False) -> None:
    ca_key, ca_cert = ca
    key = _new_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (_builder(_name(common_name, organization), ca_cert.subject, key.public_key())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    names = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    _write(path, key, builder.sign(ca_key, hashes.SHA256()))


def make_signing_key(path: Path) -> None:
    """The service-account token signing key pair (sa.key, sa.pub)."""
    key = _new_key()
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path.with_suffix(".pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


# Names the stand-in virt-api answers to: the aggregator verifies <service>.<namespace>.svc.
VIRT_API_HOSTS = ("virt-api.kubevirt.svc", "localhost", "127.0.0.1")
APISERVER_HOSTS = ("localhost", "127.0.0.1", "kubernetes", "kubernetes.default",
                   "kubernetes.default.svc", "10.0.0.1")


def make_lab_pki(pki: Path) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    cluster_ca = make_ca(pki / "ca", "palette-vmo-lab-ca")
    front_proxy_ca = make_ca(pki / "front-proxy-ca", "palette-vmo-lab-front-proxy-ca")
    make_leaf(pki / "apiserver", cluster_ca, "kube-apiserver", hosts=APISERVER_HOSTS, server=True)
    make_leaf(pki / "virt-api", cluster_ca, "virt-api", hosts=VIRT_API_HOSTS, server=True)
    make_leaf(pki / "maas", cluster_ca, "maas", hosts=("localhost", "127.0.0.1"), server=True)
    make_leaf(pki / "palette", cluster_ca, "palette", hosts=("localhost", "127.0.0.1"), server=True)
    make_leaf(pki / "front-proxy-client", front_proxy_ca, "front-proxy-client")
    make_signing_key(pki / "sa")
