"""A real OpenLDAP ``slapd`` for the tests: temp config (slapd.conf, mdb), a generated CA
and server certificate, ldap:// and ldaps:// on free ports, the test LDIF loaded."""

from __future__ import annotations

import datetime
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
BASE_DN = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "ldap-admin-secret"


@dataclass
class Slapd:
    host: str
    port: int
    ldaps_port: int
    ca_pem: str
    workdir: Path
    process: subprocess.Popen[bytes]

    def ldapmodify(self, ldif: str) -> None:
        subprocess.run(
            [
                "ldapmodify",
                "-x",
                "-H",
                f"ldap://{self.host}:{self.port}",
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
            ],
            input=ldif.encode(),
            check=True,
            capture_output=True,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _certificates(workdir: Path) -> tuple[str, Path, Path]:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mailvault test LDAP CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    cert_path = workdir / "server.pem"
    key_path = workdir / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (workdir / "ca.pem").write_text(ca_pem)
    return ca_pem, cert_path, key_path


CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {work}/slapd.pid
TLSCACertificateFile {work}/ca.pem
TLSCertificateFile {work}/server.pem
TLSCertificateKeyFile {work}/server.key
database mdb
maxsize 104857600
suffix "{base}"
rootdn "{admin}"
rootpw {password}
directory {work}/data
access to attrs=userPassword by dn.exact="{admin}" write by anonymous auth by * none
access to * by dn.exact="{admin}" write by * none
"""


def start_slapd(workdir: Path, ldif: str) -> Slapd:
    if not Path(SLAPD).exists():
        raise RuntimeError("slapd is not installed (scripts/system-test-deps.sh installs it)")
    ca_pem, _, _ = _certificates(workdir)
    (workdir / "data").mkdir()
    conf = workdir / "slapd.conf"
    conf.write_text(
        CONF.format(work=workdir, base=BASE_DN, admin=ADMIN_DN, password=ADMIN_PASSWORD)
    )
    (workdir / "data.ldif").write_text(ldif)
    subprocess.run(
        [SLAPADD, "-f", str(conf), "-l", str(workdir / "data.ldif")],
        check=True,
        capture_output=True,
    )
    port, ldaps_port = free_port(), free_port()
    urls = f"ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{ldaps_port}/"
    process = subprocess.Popen(
        [SLAPD, "-f", str(conf), "-h", urls, "-d", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"slapd exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=0.2),
                socket.create_connection(("127.0.0.1", ldaps_port), timeout=0.2),
            ):
                break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        raise RuntimeError("slapd did not start listening")
    return Slapd("127.0.0.1", port, ldaps_port, ca_pem, workdir, process)


def stop_slapd(server: Slapd) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    shutil.rmtree(server.workdir, ignore_errors=True)


def entries() -> str:
    """Users alice (enabled, two addresses), bob, carol (disabled), dave (no mail);
    groups staff -> (alice, engineering), engineering -> (bob, staff: a cycle)."""
    people = []
    for uid, cn, mail, extra in (
        ("alice", "Alice Archer", "alice@example.org", ["mail: a.archer@example.org"]),
        ("bob", "Bob Baker", "bob@example.org", []),
        ("carol", "Carol Cook", "carol@example.org", ["employeeType: disabled"]),
        ("dave", "Dave Dean", "", []),
    ):
        lines = [
            f"dn: uid={uid},ou=people,{BASE_DN}",
            "objectClass: inetOrgPerson",
            f"uid: {uid}",
            f"cn: {cn}",
            f"sn: {cn.split()[1]}",
        ]
        if mail:
            lines.append(f"mail: {mail}")
        lines.extend(extra)
        people.append("\n".join(lines))
    groups = [
        f"dn: cn=staff,ou=groups,{BASE_DN}\nobjectClass: groupOfNames\ncn: staff\n"
        f"description: Everybody\nmember: uid=alice,ou=people,{BASE_DN}\n"
        f"member: cn=engineering,ou=groups,{BASE_DN}",
        f"dn: cn=engineering,ou=groups,{BASE_DN}\nobjectClass: groupOfNames\ncn: engineering\n"
        f"member: uid=bob,ou=people,{BASE_DN}\nmember: cn=staff,ou=groups,{BASE_DN}",
    ]
    head = [
        f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example",
        f"dn: ou=people,{BASE_DN}\nobjectClass: organizationalUnit\nou: people",
        f"dn: ou=groups,{BASE_DN}\nobjectClass: organizationalUnit\nou: groups",
    ]
    return "\n\n".join(head + people + groups) + "\n"
