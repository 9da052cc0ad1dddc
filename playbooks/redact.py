"""The one definition of what counts as secret, and the redactor: hides secrets in every text
that leaves the process (Slack, the store, the journal, plans, logs) by variable name, by token
shape, and by value once a value has been seen under a secret name.

Learned values are process-wide: a password read from one task definition, or the bot's own
Slack token registered at start, vanishes from every later text whichever redactor sees it."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

HIDDEN = "[redacted]"
FINGERPRINT_PREFIX = "sha256:"

# A name is secret when one of its parts (split at "_", "-", ".", spaces and camelCase) is one
# of these words, or ends with one of SECRET_ENDINGS (DBPASS, apikey). Whole parts only, so
# `keyboard`, `monkey`, `author` and `passenger` stay readable.
SECRET_PARTS = frozenset(
    {
        "pass", "passwd", "password", "passwords", "passphrase", "pwd", "pw",
        "secret", "secrets", "token", "tokens", "key", "keys", "apikey", "privkey",
        "credential", "credentials", "creds", "cred", "cert", "certs", "certificate",
        "private", "auth", "authorization", "dsn", "sk", "jwt", "bearer", "cookie",
        "signature", "salt",
    }
)  # fmt: skip
SECRET_ENDINGS = ("password", "passwd", "pwd", "secret", "token", "apikey", "privatekey")
# `pass` as an ending would catch these words that are never secrets.
NOT_PASS_WORDS = frozenset({"bypass", "compass", "overpass", "underpass", "surpass"})
# Names that contain a secret-looking part but are known not to be (Slack's view field).
NOT_SECRET_NAMES = frozenset({"private_metadata"})
# A key that names a variable (DB_PASSWORD, apiKey, x-api-key), as opposed to free text.
IDENTIFIER = re.compile(r"[A-Za-z_][\w.-]{0,127}")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_PARTS = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z])(?=[0-9])")


def name_parts(name: str) -> list[str]:
    return [p.lower() for p in _PARTS.split(_CAMEL.sub("_", name)) if p]


def is_secret_name(name: str) -> bool:
    """THE rule: does a variable, key or field of this name hold a secret?"""
    if name.lower() in NOT_SECRET_NAMES:
        return False
    for part in name_parts(name):
        if part in SECRET_PARTS or part.endswith(SECRET_ENDINGS):
            return True
        if part.endswith("pass") and part not in NOT_PASS_WORDS:
            return True
    return False


class _SecretName:
    """For callers that test a name with `SECRET_NAME.search(name)`: the same rule."""

    def search(self, name: str) -> bool:
        return is_secret_name(name)


SECRET_NAME = _SecretName()

# Shapes of secrets in free text (log lines, error messages, URLs): (pattern, replacement).
_ID = r"[A-Za-z0-9]"
TEXT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
        ),
        HIDDEN,
    ),
    # an AWS access key id with its secret key next to it (a credentials line, a CSV row)
    (
        re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}([\s,;:|=\"']{1,6})[A-Za-z0-9/+]{40}"),
        rf"{HIDDEN}\1{HIDDEN}",
    ),
    (re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"), HIDDEN),  # AWS access key ids
    # Slack bot/user/app/refresh/config tokens (xoxb-, xoxp-, xapp-, xoxe.xoxp-, xoxe-)
    (re.compile(r"\b(?:xox[a-z](?:\.xox[a-z])?|xapp)-[A-Za-z0-9-]{4,}"), HIDDEN),
    (re.compile(r"hooks\.slack\.com/(?:services|workflows|triggers)/[\w/-]+"), HIDDEN),
    (re.compile(rf"\b(?:gh[pousr]_{_ID}{{20,}}|github_pat_\w{{20,}})"), HIDDEN),  # GitHub
    (re.compile(rf"\b(?:sk|rk|pk)_(?:live|test)_{_ID}{{8,}}|\bwhsec_{_ID}{{16,}}"), HIDDEN),
    (re.compile(rf"\bAIza[\w-]{{35}}|\bnpm_{_ID}{{36}}|\bSG\.[\w-]{{16,}}\.[\w-]{{16,}}"), HIDDEN),
    (re.compile(r"\bsk-(?:proj-|ant-)?[\w-]{20,}|\bglpat-[\w-]{20,}"), HIDDEN),
    # a long base64 run mixing cases and digits: key material on a line of its own (the body
    # of a PEM block split into log lines, a bare AWS secret key); hex digests have no capitals,
    # and a run right after "." "/" ":" or "-" is part of a host name, a path or an ARN
    (
        re.compile(
            r"(?<![\w/+.:-])(?=[A-Za-z0-9+/]*[A-Z])(?=[A-Za-z0-9+/]*[a-z])(?=[A-Za-z0-9+/]*[0-9])"
            r"[A-Za-z0-9+/]{40,}={0,2}"
        ),
        HIDDEN,
    ),
    (re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"), HIDDEN),  # JWTs
    (
        re.compile(r"(?i)\b(bearer|basic)(\s+)(?!\[redacted\])[A-Za-z0-9._~+/=-]{8,}"),
        rf"\1\2{HIDDEN}",
    ),
    # user:password@ in URLs (also an empty user: redis://:pw@host), and a long bare user
    # that is itself the key (Sentry DSNs: https://KEY@o1.ingest.sentry.io/1)
    (re.compile(r"(://[^/\s:@]*:)(?!\[redacted\]@)[^/\s@]+@"), rf"\1{HIDDEN}@"),
    (re.compile(r"(://)[A-Za-z0-9]{20,}@"), rf"\1{HIDDEN}@"),
)
# name=value, name: value, "name": "value" pairs: the value goes when the name is secret. The
# name is matched first and the value only after a secret name, every part bounded and the name
# possessive, so a hostile line ("a=a=a=...") costs linear time, not quadratic.
_NAME_SEP = re.compile(r"(?P<name>\b[A-Za-z_][\w.-]{0,127}+)(?P<sep>[\"']?\s{0,8}[=:]\s{0,8})")
_VALUE = re.compile(
    r"(?![\"']?(?:\[redacted\]|sha256:)|//|[\[{]|(?i:bearer|basic)\s)"
    r"(?:\"[^\"]{0,512}\"|'[^']{0,512}'|[^\s,;&\"'}\]<>]{1,512})"
)
# Values shorter than this are not hunted for in free text: "1" or "true" would shred every line.
MIN_LEARNED_LENGTH = 6
# Nor is a short plain word ("enabled" under AUTH_MODE): it is hidden there, not hunted for.
PLAIN_WORD = re.compile(r"[a-z]{1,9}")


class _Learned:
    """The process-wide set of secret values, with one compiled pattern rebuilt on change."""

    def __init__(self) -> None:
        self._values: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, values: Iterable[str]) -> None:
        new = {v for v in _variants(values) if _huntable(v)}
        if new <= self._values:
            return
        with self._lock:
            values_now = self._values | new
            # longest first, so a secret containing another is removed whole
            ordered = sorted(values_now, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            self._values = values_now

    def hide(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(HIDDEN, text) if pattern is not None else text

    def __contains__(self, value: str) -> bool:
        return value in self._values


def _huntable(value: str) -> bool:
    if len(value) < MIN_LEARNED_LENGTH or PLAIN_WORD.fullmatch(value):
        return False
    return HIDDEN not in value and not value.startswith(FINGERPRINT_PREFIX)


def _variants(values: Iterable[str]) -> Iterable[str]:
    """A value, and the password inside it when it is a URL with userinfo."""
    for value in values:
        if not isinstance(value, str):
            continue
        value = value.strip()
        yield value
        if "://" in value and "@" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                yield password
                yield unquote(password)


LEARNED = _Learned()


def learn(values: Iterable[str]) -> None:
    """Remember secret values process-wide, so they vanish wherever they show up later."""
    LEARNED.add(values)


def learn_mapping(data: Any) -> None:
    """Learn every string under a secret name in JSON-like data (env dicts, name/value lists)."""
    if isinstance(data, dict):
        if isinstance(data.get("name"), str) and isinstance(data.get("value"), str):
            if is_secret_name(data["name"]):
                learn([data["value"]])
        for key, value in data.items():
            if isinstance(value, str) and is_secret_name(str(key)):
                learn([value])
            else:
                learn_mapping(value)
    elif isinstance(data, list | tuple):
        for item in data:
            learn_mapping(item)


def learn_config(data: Any) -> None:
    """Learn the secrets in a configuration (a catalog, a playbook's parameters): values under
    secret names, and the password of every URL that carries one (a database DSN)."""
    learn_mapping(data)
    _learn_url_passwords(data)


def _learn_url_passwords(data: Any) -> None:
    if isinstance(data, dict):
        data = list(data.values())
    if isinstance(data, list | tuple):
        for item in data:
            _learn_url_passwords(item)
    elif isinstance(data, str) and "://" in data and "@" in data:
        learn(v for v in _variants([data]) if v != data.strip())


def fingerprint(value: str) -> str:
    """A short stand-in for a secret: shows that it changes without showing what it is."""
    return FINGERPRINT_PREFIX + hashlib.sha256(value.encode()).hexdigest()[:8]


def _hide_pairs(text: str) -> str:
    """The value of each secret-named pair hidden; after a plain name the scan goes on right
    after its separator, so `PLAIN=x-api-key: KEY` still finds the pair inside the value."""
    out, pos = [], 0
    while pair := _NAME_SEP.search(text, pos):
        value = _VALUE.match(text, pair.end()) if is_secret_name(pair["name"]) else None
        if value is None:
            out.append(text[pos : pair.end()])
            pos = pair.end()
        else:
            out += [text[pos : pair.end()], HIDDEN]
            pos = value.end()
    out.append(text[pos:])
    return "".join(out)


class Redactor:
    """One redaction policy. Secret names are the module's rule, or `name_patterns` when given
    (a target's own list, which replaces the rule for the names it judges); values seen under
    secret names are learned process-wide and removed from any later text as well."""

    def __init__(self, name_patterns: Sequence[str] | None = None) -> None:
        self._names = [re.compile(p) for p in name_patterns or ()]

    def is_secret_name(self, name: str) -> bool:
        if self._names:
            return any(p.search(name) for p in self._names)
        return is_secret_name(name)

    def learn(self, values: Iterable[str]) -> None:
        learn(values)

    def text(self, text: str) -> str:
        text = LEARNED.hide(text)
        for pattern, replacement in TEXT_PATTERNS:
            text = pattern.sub(replacement, text)
        return _hide_pairs(text)

    def environment(self, env: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
        """ECS `environment` entries: values of secret names hidden (and learned)."""
        out = []
        for entry in env:
            name, value = str(entry.get("name", "")), str(entry.get("value", ""))
            if self.is_secret_name(name):
                self.learn([value])
                value = HIDDEN
            else:
                _learn_url_passwords(value)
                value = self.text(value)
            out.append({"name": name, "value": value})
        return out

    def value(self, value: Any) -> Any:
        """Walk JSON-like data: values under secret names hidden, every string scrubbed."""
        if isinstance(value, dict):
            if isinstance(value.get("name"), str) and "value" in value:
                if self.is_secret_name(value["name"]) and value["value"] != HIDDEN:
                    self.learn([str(value["value"])])
                    value = {**value, "value": HIDDEN}
            return {self.text(str(k)): self._field(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def _field(self, key: str, value: Any) -> Any:
        if (
            isinstance(value, str)
            and value
            and IDENTIFIER.fullmatch(key)
            and self.is_secret_name(key)
        ):
            # hidden, not learned: a key like "auth" may hold "required" in a health body
            return value if value.startswith(FINGERPRINT_PREFIX) else HIDDEN
        return self.value(value)


DEFAULT = Redactor()


def redact(value: Any) -> Any:
    """JSON-like data through the default policy."""
    return DEFAULT.value(value)


def redact_text(text: str) -> str:
    """A text through the default policy."""
    return DEFAULT.text(text)
