"""Deterministic seeding of the emulated tenant.

``corpus``: users, mailboxes and folders built from the Enron mailboxes of the shared
corpus (``enron-subset.tar.xz``, CMU layout ``cmu-layout/<owner>/<folder>/<n>.``), the
messages' exact bytes served by ``$value``. ``generated``: the same shape (licensed users
with mailboxes, users without one, disabled users, guests, nested groups, domains)
invented from a seed, any size; mailboxes are built on first use so a 10,000-user tenant
starts in about a second. Same seed, same ids.
"""

from __future__ import annotations

import base64
import collections
import datetime
import email.utils
import fcntl
import hashlib
import os
import random
import re
import shutil
import tarfile
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path

from m365_emulator.model import (
    E1_SKU,
    E3_SKU,
    Domain,
    Folder,
    Group,
    Mailbox,
    User,
    det_uuid,
    exchange_id,
)
from m365_emulator.state import App, Tenant

CORPUS_FILE = "enron-subset.tar.xz"
SAMPLE = 150  # messages per folder read to find owners and frequent correspondents
SENT = ("sent_items", "sent", "_sent_mail", "_sent")
SKIPPED = {"all_documents", "discussion_threads", "calendar", "contacts", "tasks", "to_do"}
STANDARD = (
    ("inbox", "Inbox", False),
    ("drafts", "Drafts", False),
    ("sentitems", "Sent Items", False),
    ("deleteditems", "Deleted Items", False),
    ("junkemail", "Junk Email", False),
    ("outbox", "Outbox", False),
    ("archive", "Archive", False),
    ("conversationhistory", "Conversation History", False),
    (None, "Yammer Root", True),
)


@dataclass
class FixtureOptions:
    kind: str = "corpus"  # or "generated"
    seed: str = "mailvault"
    users: int = 40
    groups: int = 10
    max_per_folder: int | None = None
    corpus: Path | None = None
    tenant_id: str | None = None
    consented: bool = False
    user_password: str = "Passw0rd!M365"


def corpus_path(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit
    base = os.environ.get("MAILVAULT_CORPUS")
    folder = Path(base) if base else Path(__file__).resolve().parents[3] / "shared" / "corpus"
    return folder / CORPUS_FILE


def build(options: FixtureOptions) -> Tenant:
    """The tenant for ``options``; ``corpus`` falls back to ``generated`` (same shape)
    when the corpus file is absent."""
    if options.kind == "corpus" and corpus_path(options.corpus).is_file():
        return _from_corpus(options)
    return _generated(options)


def app_credentials(seed: str) -> tuple[str, str]:
    """The registered app's client id and secret (deterministic from the seed)."""
    secret_hash = hashlib.sha256(f"{seed}/secret".encode()).digest()
    return det_uuid(seed, "app"), "mv8Q~" + base64.urlsafe_b64encode(secret_hash).decode()[:35]


# --- common shape --------------------------------------------------------------------
def _new_tenant(options: FixtureOptions, name: str, display: str, default: str) -> Tenant:
    seed = options.seed
    tenant = Tenant(options.tenant_id or det_uuid(seed, "tenant"), display, seed)
    tenant.domains = [
        Domain(default, is_default=True),
        Domain(f"{name}.onmicrosoft.com", is_initial=True),
        Domain(f"{name}-legacy.net", is_verified=False),
    ]
    client_id, secret = app_credentials(seed)
    app = App(client_id=client_id, secret=secret, consented=options.consented)
    app.service_principal_id = det_uuid(seed, "service-principal")
    tenant.apps[app.client_id] = app
    tenant.user_password = options.user_password
    admin_upn = f"admin@{tenant.initial_domain}"
    tenant.add_user(
        User(
            id=det_uuid(seed, "user", admin_upn),
            user_principal_name=admin_upn,
            display_name="MOD Administrator",
            given_name="MOD",
            surname="Administrator",
            mail=None,
            is_admin=True,
        )
    )
    return tenant


def _member(tenant: Tenant, email_address: str, display: str, **extra: object) -> User:
    local = email_address.split("@")[0]
    given, _, surname = display.partition(" ")
    user = User(
        id=det_uuid(tenant.seed, "user", email_address.lower()),
        user_principal_name=email_address,
        display_name=display,
        given_name=given,
        surname=surname,
        mail=email_address,
        proxy_addresses=[f"SMTP:{email_address}", f"smtp:{local}@{tenant.initial_domain}"],
    )
    for key, value in extra.items():
        setattr(user, key, value)
    return tenant.add_user(user)


def _guest(tenant: Tenant, address: str, display: str) -> User:
    upn = address.replace("@", "_") + f"#EXT#@{tenant.initial_domain}"
    return tenant.add_user(
        User(
            id=det_uuid(tenant.seed, "user", upn.lower()),
            user_principal_name=upn,
            display_name=display,
            given_name=display.split(" ")[0],
            surname=display.split(" ")[-1],
            mail=address,
            user_type="Guest",
            proxy_addresses=[f"SMTP:{address}"],
        )
    )


def _group(
    tenant: Tenant, name: str, members: list[str], *, kind: str = "security", mail: str = ""
) -> Group:
    """kind: security, distribution (mail-enabled, not security) or unified (M365 group)."""
    return tenant.add_group(
        Group(
            id=det_uuid(tenant.seed, "group", name),
            display_name=name,
            mail=mail or None,
            mail_enabled=kind != "security",
            security_enabled=kind == "security",
            group_types=["Unified"] if kind == "unified" else [],
            description=f"{name} ({kind})",
            members=list(dict.fromkeys(members)),
        )
    )


def standard_mailbox(tenant: Tenant, user: User) -> tuple[Mailbox, dict[str, Folder]]:
    box = Mailbox(user_id=user.id)

    def add(
        name: str,
        parent: str,
        well_known: str | None = None,
        is_hidden: bool = False,
        search_folder: bool = False,
    ) -> Folder:
        folder = Folder(
            id=exchange_id("AQMkAD", user.id, "folder", parent, name),
            display_name=name,
            parent_id=parent,
            well_known=well_known,
            is_hidden=is_hidden,
            search_folder=search_folder,
        )
        box.seq += 1
        folder.version = box.seq
        box.folders[folder.id] = folder
        if well_known:
            box.well_known[well_known] = folder.id
        return folder

    top = add("Top of Information Store", "", "msgfolderroot", is_hidden=True)
    folders = {wk or name: add(name, top.id, wk, is_hidden=hidden) for wk, name, hidden in STANDARD}
    recoverable = add("Recoverable Items", "", None, is_hidden=True)
    add("Deletions", recoverable.id, "recoverableitemsdeletions", is_hidden=True)
    add("Purges", recoverable.id, "recoverableitemspurges", is_hidden=True)
    add("Unread Mail", top.id, None, search_folder=True)
    folders["msgfolderroot"] = top
    return box, folders


def _child(box: Mailbox, parent: Folder, name: str) -> Folder:
    folder = Folder(
        id=exchange_id("AQMkAD", box.user_id, "folder", parent.id, name),
        display_name=name,
        parent_id=parent.id,
    )
    box.seq += 1
    folder.version = box.seq
    box.folders[folder.id] = folder
    return folder


# --- corpus --------------------------------------------------------------------------
_PERSON = re.compile(r"^[a-z]+\.[a-z]+@")
_NAME = re.compile(r"^\s*\"?([^\"<]*?)\"?\s*(<.*)?$")


def _display(x_from: str, address: str) -> str:
    name = _NAME.match(x_from or "")
    text = (name.group(1) if name else "").strip()
    if "," in text:
        last, _, first = text.partition(",")
        text = f"{first.strip()} {last.strip()}"
    if not text or "@" in text:
        text = " ".join(p.capitalize() for p in address.split("@")[0].split("."))
    return text


def unpacked_corpus(archive: Path) -> Path:
    """The archive unpacked once into the corpus cache shared with the test suite
    (``$MAILVAULT_CORPUS_CACHE``, else /tmp/mailvault-corpus-cache), under a lock."""
    stat = archive.stat()
    cache = Path(os.environ.get("MAILVAULT_CORPUS_CACHE") or "/tmp/mailvault-corpus-cache")  # noqa: S108
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / f"enron-subset-{stat.st_size}-{int(stat.st_mtime)}"
    if (dest / ".unpacked").exists():
        return dest
    with open(cache / f"{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (dest / ".unpacked").exists():
            partial = cache / f"{dest.name}.partial-{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            shutil.rmtree(dest, ignore_errors=True)
            with tarfile.open(archive) as tar:
                _extract_all(tar, partial)
            partial.rename(dest)
            (dest / ".unpacked").touch()
    return dest


def _read_corpus(path: Path, cap: int | None) -> dict[str, dict[str, list[tuple[int, bytes]]]]:
    root = unpacked_corpus(path) / "cmu-layout"
    boxes: dict[str, dict[str, list[tuple[int, bytes]]]] = {}
    for owner in sorted(p.name for p in root.iterdir() if p.is_dir()):
        folders: dict[str, list[tuple[int, bytes]]] = {}
        for dirpath, _dirs, files in os.walk(root / owner):
            numbers = sorted(int(f.rstrip(".")) for f in files if f.rstrip(".").isdigit())
            if not numbers:
                continue
            folder = Path(dirpath).relative_to(root / owner).as_posix()
            chosen = numbers[:cap] if cap is not None else numbers
            folders[folder] = [(n, (Path(dirpath) / f"{n}.").read_bytes()) for n in chosen]
        boxes[owner] = folders
    return boxes


def _from_corpus(options: FixtureOptions) -> Tenant:
    raw_boxes = _read_corpus(corpus_path(options.corpus), options.max_per_folder)
    tenant = _new_tenant(options, "enroncorp", "Enron Corp (emulated)", "enron.com")
    senders: collections.Counter[str] = collections.Counter()
    externals: collections.Counter[str] = collections.Counter()
    names: dict[str, str] = {}
    owners: dict[str, str] = {}
    for owner, folders in sorted(raw_boxes.items()):
        own: collections.Counter[str] = collections.Counter()
        for folder, items in folders.items():
            for _n, raw in items[:SAMPLE]:
                head = message_from_bytes(raw.split(b"\n\n", 1)[0] + b"\n\n")
                _, sender = email.utils.parseaddr(str(head["From"] or ""))
                sender = sender.lower()
                if not sender:
                    continue
                names.setdefault(sender, _display(str(head["X-From"] or ""), sender))
                if folder in SENT:
                    own[sender] += 1
                if sender.endswith("@enron.com"):
                    senders[sender] += 1
                elif "@" in sender:
                    externals[sender] += 1
        surname = owner.split("-")[0]
        guess = [a for a, _ in own.most_common() if surname in a.split("@")[0]]
        fallback = [a for a in senders if a.split("@")[0].endswith("." + surname)]
        owners[owner] = (guess or fallback or [f"{surname}@enron.com"])[0]
    owner_users: dict[str, User] = {}
    for index, (owner, address) in enumerate(sorted(owners.items())):
        owner_users[owner] = _member(
            tenant,
            address,
            names.get(address) or _display("", address),
            licenses=[E3_SKU],
            has_mailbox=True,
            department="Executive" if owner in ("lay-k", "skilling-j") else "Trading",
            account_enabled=index != 0,  # a departed employee whose mailbox remains
        )
    plain = [
        a
        for a, _ in senders.most_common()
        if a not in owners.values() and _PERSON.match(a) and not a.startswith("no.")
    ][:16]
    others = [
        _member(
            tenant,
            address,
            names.get(address) or _display("", address),
            account_enabled=i % 7 != 3,
            job_title="Analyst",
        )
        for i, address in enumerate(plain)
    ]
    guests = [
        _guest(tenant, address, names.get(address) or _display("", address))
        for address, _ in externals.most_common(2)
    ]
    owner_ids = {k: u.id for k, u in owner_users.items()}
    execs = [owner_ids[k] for k in ("lay-k", "skilling-j", "whalley-g") if k in owner_ids]
    traders = [i for k, i in owner_ids.items() if k not in ("lay-k", "skilling-j")]
    members = [u.id for u in tenant.users.values() if u.user_type == "Member" and u.mail]
    admin_id = next(u.id for u in tenant.users.values() if u.is_admin)
    _nested_groups(tenant, members, execs, traders, [o.id for o in others[:4]], admin_id)
    _group(tenant, "External Partners", [g.id for g in guests])

    def factory(user: User) -> Mailbox:
        owner = next(k for k, u in owner_users.items() if u.id == user.id)
        return _corpus_mailbox(tenant, user, raw_boxes[owner])

    tenant.mailbox_factory = factory
    return tenant


def _nested_groups(
    tenant: Tenant,
    everyone: list[str],
    execs: list[str],
    traders: list[str],
    analysts: list[str],
    admin_id: str,
) -> None:
    domain = tenant.default_domain
    _group(tenant, "All Employees", everyone, kind="unified", mail=f"allemployees@{domain}")
    committee = _group(tenant, "Executive Committee", execs)
    desk = _group(tenant, "Trading Desk", traders, kind="distribution", mail=f"trading@{domain}")
    leadership = _group(tenant, "Leadership", [committee.id, *analysts[:1]])
    _group(tenant, "Mailvault Readers", [leadership.id, desk.id, *analysts[1:]])
    _group(tenant, "Mailvault Admins", [admin_id, *execs[:1]])


def _corpus_mailbox(
    tenant: Tenant, user: User, folders: dict[str, list[tuple[int, bytes]]]
) -> Mailbox:
    box, standard = standard_mailbox(tenant, user)
    sent = max((f for f in folders if f in SENT), key=lambda f: len(folders[f]), default=None)
    made: dict[str, Folder] = {}

    def nested(path: str) -> Folder:
        if path not in made:
            parent_path, _, leaf = path.rpartition("/")
            if parent_path:
                parent = nested(parent_path)
            elif path in ("inbox", "notes_inbox", "_enron"):
                parent = standard["inbox"]
            else:
                parent = nested("_enron")
            if path == "inbox":
                made[path] = standard["inbox"]
            else:
                title = "Enron" if leaf == "_enron" else leaf.replace("_", " ").strip().title()
                made[path] = _child(box, parent, title)
        return made[path]

    for name in sorted(folders):
        if name.split("/")[0] in SKIPPED or (name in SENT and name != sent):
            continue
        if name == sent:
            target = standard["sentitems"]
        elif name == "deleted_items":
            target = standard["deleteditems"]
        else:
            target = nested(name)
        for n, raw in folders[name]:
            tenant.deliver(box, target, raw, key=(name, n), is_read=n % 3 != 0)
    return box


# --- generated -----------------------------------------------------------------------
FIRST = "Ada Ben Cara Dan Eva Finn Gia Hugo Ida Jon Kai Lea Max Nia Otto Pia Quinn Rosa Sam Tia"
LAST = "Adams Baker Chen Diaz Evans Fox Garcia Hill Ito Jones Khan Lopez Meyer Novak Olsen Park"
DEPARTMENTS = ("Sales", "Finance", "Legal", "Engineering", "Support", "Marketing", "HR", "Ops")


def _generated(options: FixtureOptions) -> Tenant:
    rng = random.Random(options.seed)  # noqa: S311 - deterministic fixture data
    tenant = _new_tenant(options, "contosoemu", "Contoso (emulated)", "contoso.com")
    firsts, lasts = FIRST.split(), LAST.split()
    people: list[User] = []
    for i in range(max(options.users, 5)):
        first, last = firsts[i % len(firsts)], lasts[(i // len(firsts)) % len(lasts)]
        display = f"{first} {last}" + (f" {i // (len(firsts) * len(lasts))}" if i >= 320 else "")
        address = f"{first}.{last}{i}@{tenant.default_domain}".lower()
        roll = i % 50
        if roll == 7:
            people.append(_guest(tenant, f"{first}.{last}{i}@fabrikam.example".lower(), display))
            continue
        licensed = roll not in (3, 13, 23, 33, 43)  # 10 % have no licence, so no mailbox
        people.append(
            _member(
                tenant,
                address,
                display,
                licenses=[E3_SKU if i % 4 else E1_SKU] if licensed else [],
                has_mailbox=licensed,
                account_enabled=roll not in (5, 29),
                department=DEPARTMENTS[i % len(DEPARTMENTS)],
                job_title="Staff",
            )
        )
    members = [u.id for u in people if u.user_type == "Member"]
    admin_id = next(u.id for u in tenant.users.values() if u.is_admin)
    _nested_groups(tenant, members, members[:3], members[3:9], members[9:14], admin_id)
    groups: list[Group] = []
    for j in range(max(options.groups - 7, 0)):
        picks = rng.sample(members, min(len(members), rng.randint(2, 12)))
        nested = [groups[(j - 1) // 4].id] if j and j % 4 == 1 else []
        groups.append(
            _group(tenant, f"{DEPARTMENTS[j % len(DEPARTMENTS)]} Team {j}", [*nested, *picks])
        )
    _group(tenant, "External Partners", [u.id for u in people if u.user_type == "Guest"])
    tenant.mailbox_factory = lambda user: _generated_mailbox(tenant, user, members)
    return tenant


def _generated_mailbox(tenant: Tenant, user: User, members: list[str]) -> Mailbox:
    box, standard = standard_mailbox(tenant, user)
    rng = random.Random(f"{tenant.seed}/{user.id}")  # noqa: S311 - fixture data
    projects = _child(box, standard["inbox"], "Projects")
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    for n in range(8):
        other = tenant.users[rng.choice(members)]
        outgoing = n >= 6
        sender, rcpt = (user, other) if outgoing else (other, user)
        when = start + datetime.timedelta(hours=rng.randint(0, 24 * 365))
        raw = (
            f"From: {sender.display_name} <{sender.mail}>\r\n"
            f"To: {rcpt.display_name} <{rcpt.mail}>\r\n"
            f"Subject: {rng.choice(DEPARTMENTS)} update {n}\r\n"
            f"Date: {email.utils.format_datetime(when)}\r\n"
            f"Message-ID: <{det_uuid(tenant.seed, user.id, n)}@{tenant.default_domain}>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Hello {rcpt.given_name},\r\n\r\nnumber {rng.randint(1, 10**6)} as discussed.\r\n"
        ).encode()
        folder = standard["sentitems"] if outgoing else (projects if n == 5 else standard["inbox"])
        tenant.deliver(box, folder, raw, key=("gen", n), is_read=n % 2 == 0, received=when)
    return box


def _extract_all(tar: tarfile.TarFile, dest: Path) -> None:
    """Unpack a corpus archive (our own) with tarfile's "data" filter where the interpreter
    has it (3.11.4+; Debian's 3.11.2, which `make` prefers, does not)."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
    else:
        tar.extractall(dest)  # noqa: S202 - our own corpus archive
