"""The service's access to job binaries and data sources in object storage.

``swift://container/object`` goes through python-swiftclient to the Swift the deployment
names (Sahara's service config: ``StoragePolicy.swift_auth_url``), with the binary's or data
source's ``user`` (``account:user`` for tempauth) and ``password``; ``s3://bucket/key`` goes
through boto3 (signature v4, path-style) to the binary's ``endpoint`` or the deployment's
default, with ``accesskey``/``secretkey``; ``file://`` binaries are read only from their
project's own job binary folder ``<binary_root>/<project folder>/``.

Every host contacted (the Swift auth URL and the storage URL it answers, an S3 endpoint) is
checked first: one that resolves to a loopback, link-local (the metadata address included),
private or otherwise special address is refused unless the policy names it
(``private_hosts``), so a tenant cannot aim the service at its own or its neighbours'
internals. Spark reads ``swift://`` and ``s3://`` data sources through S3A
(``s3a_settings``, ``s3a_jars``): Swift's s3api serves a container as a bucket on the same
proxy, with the Swift user as access key and its password as secret.

Secrets (passwords, secret keys) never appear in an exception, a log line or a repr made
here.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # at run time only its fields are read
    from sahara_es.edp.base import DataSourceAccess

MAX_BINARY_BYTES = 64 * 1024 * 1024
"""The largest job binary fetched (a job binary is a script or a jar, not a data set)."""

TIMEOUT = 30.0
"""Seconds for connecting to and reading from a store, per request."""

SECRET_KEYS = ("password", "secretkey", "secret_key", "token")
S3A_CREDENTIALS_PROVIDER = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
S3A_REGION = "us-east-1"

SAFE_FOLDER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
SAFE_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


class StorageRefused(Exception):
    """The URL, the host or the credentials are not acceptable, or the object is not there:
    asking again will not help. The message names no secret."""

    retryable = False


class StorageUnavailable(Exception):
    """The store could not be reached or failed this time: try again later."""

    retryable = True


class S3AJarsMissing(FileNotFoundError):
    """The S3A jar folder is not there (``tools/s3a-jars`` fetches it)."""


@dataclass(frozen=True)
class StoragePolicy:
    """Where storage lives and what the service may reach (the deployment's config)."""

    swift_auth_url: str | None = None
    """Swift's auth URL (tempauth v1.0, ``http://host:port/auth/v1.0``): where every
    ``swift://`` URL lives. None: ``swift://`` is refused."""
    s3_endpoint: str | None = None
    """The S3 endpoint used when a binary or data source names none."""
    binary_root: Path | None = None
    """``file://`` binaries only inside ``<binary_root>/<project folder>/``. None: refused."""
    private_hosts: frozenset[str] = field(default_factory=frozenset)
    """``host`` or ``host:port`` that may resolve to loopback, link-local or private
    addresses (a local Swift); every other such host is refused."""
    max_bytes: int = MAX_BINARY_BYTES


def policy_from_env(environ: Mapping[str, str] | None = None) -> StoragePolicy:
    """``SAHARA_ES_SWIFT_AUTH_URL``, ``SAHARA_ES_S3_ENDPOINT``,
    ``SAHARA_ES_STORAGE_PRIVATE_HOSTS`` (comma separated) and ``SAHARA_ES_JOB_BINARY_ROOT``."""
    env = os.environ if environ is None else environ
    root = env.get("SAHARA_ES_JOB_BINARY_ROOT", "").strip()
    hosts = env.get("SAHARA_ES_STORAGE_PRIVATE_HOSTS", "")
    return StoragePolicy(
        swift_auth_url=env.get("SAHARA_ES_SWIFT_AUTH_URL", "").strip() or None,
        s3_endpoint=env.get("SAHARA_ES_S3_ENDPOINT", "").strip() or None,
        binary_root=Path(root) if root else None,
        private_hosts=frozenset(h.strip().lower() for h in hosts.split(",") if h.strip()),
    )


# -- secrets --------------------------------------------------------------------------------

class SecretSettings(dict[str, str]):
    """A dict whose repr hides the values of its secret keys."""

    def __repr__(self) -> str:
        shown = {k: ("***" if _is_secret_key(k) else v) for k, v in self.items()}
        return f"{type(self).__name__}({shown!r})"

    __str__ = __repr__


def _is_secret_key(key: str) -> bool:
    lowered = key.lower().replace("-", "").replace("_", "").replace(".", "")
    return any(word in lowered for word in ("password", "secret", "token"))


def _secrets(credentials: Mapping[str, Any]) -> list[str]:
    return [str(v) for k, v in credentials.items() if _is_secret_key(k) and v]


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


# -- URLs and hosts -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Location:
    scheme: str
    bucket: str
    key: str


def _location(url: str) -> _Location:
    """``swift://container/object`` (Sahara's ``container.sahara`` accepted),
    ``s3://bucket/key``; the key may be empty (a prefix)."""
    scheme, _, rest = url.partition("://")
    bucket, _, key = rest.partition("/")
    if scheme == "swift" and bucket.endswith(".sahara"):
        bucket = bucket[: -len(".sahara")]
    if not SAFE_BUCKET.fullmatch(bucket):
        raise StorageRefused(f"{scheme}:// URL names no valid container or bucket"
                             " (letters, digits, '.', '_' and '-')")
    if "\x00" in key or any(part == ".." for part in key.split("/")):
        raise StorageRefused(f"{scheme}:// URL has an invalid object name")
    return _Location(scheme, bucket, key)


def _forbidden_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_loopback or ip.is_link_local or ip.is_private or ip.is_unspecified
            or ip.is_multicast or ip.is_reserved
            or str(ip) in ("169.254.169.254", "fd00:ec2::254"))


def check_endpoint(endpoint: str, policy: StoragePolicy, what: str = "storage endpoint") -> None:
    """``StorageRefused`` unless ``endpoint`` is an http(s) URL whose host the service may
    contact: not resolving to a loopback, link-local, private or special address, unless the
    policy's ``private_hosts`` names it."""
    try:
        parts = urlsplit(endpoint)
        port = parts.port
        host = (parts.hostname or "").lower()
    except ValueError as error:
        raise StorageRefused(f"{what} is not a valid URL") from error
    if parts.scheme not in ("http", "https") or not host:
        raise StorageRefused(f"{what} must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise StorageRefused(f"{what} must not carry credentials in its URL")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    named = host if ":" not in host else f"[{host}]"
    if host in policy.private_hosts or f"{named}:{port}" in policy.private_hosts \
            or f"{host}:{port}" in policy.private_hosts:
        return
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        if error.errno in (socket.EAI_AGAIN,):
            raise StorageUnavailable(f"{what} host {host} could not be resolved now") from error
        raise StorageRefused(f"{what} host {host} does not resolve") from error
    except (UnicodeError, ValueError) as error:
        raise StorageRefused(f"{what} host is not a valid host name") from error
    for info in infos:
        if _forbidden_address(str(info[4][0])):
            raise StorageRefused(
                f"{what} host {host} is a loopback, link-local or private address this"
                " deployment does not allow")


def check_url(url: str, policy: StoragePolicy) -> None:
    """``StorageRefused`` unless ``url`` is a job binary or data source URL the service may
    open: ``swift://`` with a Swift configured, ``s3://`` with an endpoint that is allowed
    (the policy's default; a binary's own endpoint is checked when used), ``file://`` with a
    job binary root. Hosts contacted are checked as ``check_endpoint`` does."""
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme == "swift":
        _location(url)
        if not policy.swift_auth_url:
            raise StorageRefused("swift:// is not served: this deployment has no Swift")
        check_endpoint(policy.swift_auth_url, policy, "Swift auth URL")
    elif scheme == "s3":
        _location(url)
        if policy.s3_endpoint:
            check_endpoint(policy.s3_endpoint, policy, "S3 endpoint")
    elif scheme == "file":
        if policy.binary_root is None:
            raise StorageRefused("file:// is not served: this deployment has no job binary"
                                 " folder")
        if not url[len("file://"):].startswith("/"):
            raise StorageRefused("file:// URL must name an absolute path")
    else:
        raise StorageRefused(f"URL scheme {scheme + '://' if scheme else '(none)'} is not"
                             " allowed here (swift://, s3:// or file://)")


# -- file:// --------------------------------------------------------------------------------

def project_folder_name(project_id: str) -> str:
    """The project's job binary folder's name: its id, or ``sha256.<hex digest of the id>``
    when the id is not 1-64 letters, digits, ``_`` and ``-`` (the dot keeps the two apart)."""
    if SAFE_FOLDER_NAME.fullmatch(project_id):
        return project_id
    return f"sha256.{hashlib.sha256(project_id.encode('utf-8', 'replace')).hexdigest()}"


def binary_file(root: Path, project_id: str, path: str) -> Path | None:
    """The file ``path`` names, if it is one inside the project's own job binary folder
    ``<root>/<project folder>/`` once symlinks are followed (another project's files, ``..``
    and links out of the folder are not the project's to read); else None."""
    try:
        folder = (root / project_folder_name(project_id)).resolve()
        named = Path(path)
        if not named.is_absolute() or ".." in named.parts:
            return None
        found = named.resolve()
        if found.is_relative_to(folder) and found != folder and found.is_file():
            return found
    except (OSError, ValueError, RuntimeError):  # NUL, too long, a symlink loop: no file
        pass
    return None


def _read_file(url: str, project_id: str, policy: StoragePolicy) -> bytes:
    assert policy.binary_root is not None
    path = binary_file(policy.binary_root, project_id, url[len("file://"):])
    # the server's folders are nobody's business: say what is missing, not where
    refused = StorageRefused("file:// job binary is not a file in its project's job binary"
                             " folder")
    if path is None:
        raise refused
    try:
        with path.open("rb") as stream:
            return _capped(iter(lambda: stream.read(1 << 20), b""), policy.max_bytes, url)
    except OSError as error:
        raise refused from error


def _capped(chunks: Iterable[bytes], limit: int, url: str) -> bytes:
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) > limit:
            raise StorageRefused(f"{url} is larger than {limit} bytes, the most a job binary"
                                 " may be")
    return bytes(data)


def _too_large(size: str | int | None, limit: int, url: str) -> None:
    try:
        if size is not None and int(size) > limit:
            raise StorageRefused(f"{url} is {int(size)} bytes, more than the {limit} a job"
                                 " binary may be")
    except ValueError:
        pass


# -- swift:// -------------------------------------------------------------------------------

def _swift(credentials: Mapping[str, str], policy: StoragePolicy) -> Any:
    """A swiftclient Connection, authenticated, to a checked storage URL."""
    import swiftclient.client as swift  # type: ignore[import-untyped]
    from swiftclient.exceptions import ClientException  # type: ignore[import-untyped]

    auth_url = policy.swift_auth_url
    if not auth_url:
        raise StorageRefused("swift:// is not served: this deployment has no Swift")
    check_endpoint(auth_url, policy, "Swift auth URL")
    user, password = credentials.get("user"), credentials.get("password")
    if not user or not password:
        raise StorageRefused("swift:// needs the 'user' and 'password' credentials")
    try:
        storage_url, token = swift.get_auth(auth_url, user, password, auth_version="1",
                                            timeout=TIMEOUT)
    except ClientException as error:
        raise _swift_error(error, "authentication", [password]) from None
    except Exception as error:  # requests' connection errors, timeouts
        raise StorageUnavailable(f"Swift at {_origin(auth_url)} could not be reached"
                                 f" ({type(error).__name__})") from None
    check_endpoint(storage_url, policy, "Swift storage URL")
    return swift.Connection(preauthurl=storage_url, preauthtoken=token, retries=0,
                            timeout=TIMEOUT, auth_version="1")


def _swift_error(error: Any, doing: str, secrets: list[str]) -> Exception:
    status = getattr(error, "http_status", None)
    reason = _redact(str(getattr(error, "http_reason", "") or ""), secrets)
    if status in (401, 403):
        return StorageRefused(f"Swift refused the credentials ({doing}: {status} {reason})")
    if status == 404:
        return StorageRefused(f"Swift has no such object or container ({doing}: 404)")
    if status is not None and 400 <= status < 500:
        return StorageRefused(f"Swift refused the request ({doing}: {status} {reason})")
    return StorageUnavailable(f"Swift failed ({doing}: {status or 'no answer'} {reason})")


def _swift_call(credentials: Mapping[str, str], policy: StoragePolicy, doing: str,
                call: Any) -> Any:
    from swiftclient.exceptions import ClientException

    connection = _swift(credentials, policy)
    try:
        return call(connection)
    except ClientException as error:
        raise _swift_error(error, doing, _secrets(credentials)) from None
    except (StorageRefused, StorageUnavailable):
        raise
    except Exception as error:
        raise StorageUnavailable(f"Swift could not be reached ({doing}:"
                                 f" {type(error).__name__})") from None
    finally:
        connection.close()


def _fetch_swift(url: str, credentials: Mapping[str, str], policy: StoragePolicy) -> bytes:
    where = _location(url)
    if not where.key:
        raise StorageRefused("swift:// job binary URL names no object")

    def get(connection: Any) -> bytes:
        headers, body = connection.get_object(where.bucket, where.key, resp_chunk_size=1 << 20)
        try:
            _too_large(headers.get("content-length"), policy.max_bytes, url)
            return _capped(body, policy.max_bytes, url)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    data: bytes = _swift_call(credentials, policy, f"reading {url}", get)
    return data


# -- s3:// ----------------------------------------------------------------------------------

def _flag(value: object, default: bool) -> bool:
    """A boolean given as one or as "true"/"false" (Sahara's credentials are strings)."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise StorageRefused(f"{value!r} is not a boolean (true or false)")


def _s3_endpoint(credentials: Mapping[str, Any], policy: StoragePolicy) -> str:
    endpoint = str(credentials.get("endpoint") or policy.s3_endpoint or "").strip()
    if not endpoint:
        raise StorageRefused("s3:// needs an endpoint: none given and no default configured")
    if "://" not in endpoint:
        scheme = "https" if _flag(credentials.get("ssl"), True) else "http"
        endpoint = f"{scheme}://{endpoint}"
    check_endpoint(endpoint, policy, "S3 endpoint")
    return endpoint.rstrip("/")


def _s3(credentials: Mapping[str, Any], policy: StoragePolicy) -> Any:
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    access, secret = credentials.get("accesskey"), credentials.get("secretkey")
    if not access or not secret:
        raise StorageRefused("s3:// needs the 'accesskey' and 'secretkey' credentials")
    endpoint = _s3_endpoint(credentials, policy)
    addressing = "path" if _flag(credentials.get("bucket_in_path"), True) else "virtual"
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=S3A_REGION,
        aws_access_key_id=str(access), aws_secret_access_key=str(secret),
        config=Config(signature_version="s3v4", s3={"addressing_style": addressing},
                      connect_timeout=TIMEOUT, read_timeout=TIMEOUT,
                      retries={"max_attempts": 1, "mode": "standard"}))


def _s3_call(credentials: Mapping[str, Any], policy: StoragePolicy, doing: str,
             call: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    client = _s3(credentials, policy)
    secrets = _secrets(credentials)
    try:
        return call(client)
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        code = _redact(code, secrets)
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied",
                    "InvalidToken") or status in (401, 403):
            raise StorageRefused(f"S3 refused the credentials ({doing}: {code or status})"
                                 ) from None
        if code in ("NoSuchKey", "NoSuchBucket", "404") or status == 404:
            raise StorageRefused(f"S3 has no such object or bucket ({doing}: {code})"
                                 ) from None
        if 400 <= status < 500:
            raise StorageRefused(f"S3 refused the request ({doing}: {code or status})"
                                 ) from None
        raise StorageUnavailable(f"S3 failed ({doing}: {code or status})") from None
    except BotoCoreError as error:
        raise StorageUnavailable(f"S3 could not be reached ({doing}:"
                                 f" {type(error).__name__})") from None
    finally:
        client.close()


def _fetch_s3(url: str, credentials: Mapping[str, Any], policy: StoragePolicy) -> bytes:
    where = _location(url)
    if not where.key:
        raise StorageRefused("s3:// job binary URL names no object")

    def get(client: Any) -> bytes:
        answer = client.get_object(Bucket=where.bucket, Key=where.key)
        body = answer["Body"]
        try:
            _too_large(answer.get("ContentLength"), policy.max_bytes, url)
            return _capped(iter(lambda: body.read(1 << 20), b""), policy.max_bytes, url)
        finally:
            body.close()

    data: bytes = _s3_call(credentials, policy, f"reading {url}", get)
    return data


# -- the service's entry points -------------------------------------------------------------

def fetch_binary(url: str, extra: dict[str, str], project_id: str,
                 policy: StoragePolicy) -> bytes:
    """A job binary's bytes: ``swift://container/object`` with ``extra`` {"user",
    "password"}, ``s3://bucket/key`` with {"accesskey", "secretkey", "endpoint"},
    ``file://`` inside the project's job binary folder; at most ``policy.max_bytes``.
    ``StorageRefused`` (not retryable) or ``StorageUnavailable`` (retryable)."""
    check_url(url, policy)
    if url.startswith("swift://"):
        return _fetch_swift(url, extra, policy)
    if url.startswith("s3://"):
        return _fetch_s3(url, extra, policy)
    return _read_file(url, project_id, policy)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def s3a_settings(source: DataSourceAccess, policy: StoragePolicy
                 ) -> tuple[str, dict[str, str]]:
    """The ``s3a://`` URL Spark reads or writes for an ``s3://`` or ``swift://`` data source
    and the per-bucket ``spark.hadoop.fs.s3a.bucket.<bucket>.*`` settings reaching it (so two
    data sources with different credentials work in one job). A ``swift://`` source is
    served by S3A through s3api on the Swift proxy: its user is the access key, its password
    the secret. The settings hold the secret: hand them to Spark, never to a log (their
    repr hides it)."""
    check_url(source.url, policy)
    where = _location(source.url)
    credentials = source.credentials
    if where.scheme == "swift":
        assert policy.swift_auth_url is not None
        user, password = credentials.get("user"), credentials.get("password")
        if not user or not password:
            raise StorageRefused("swift:// needs the 'user' and 'password' credentials")
        endpoint = _origin(policy.swift_auth_url)
        access, secret = str(user), str(password)
        path_style, ssl = True, endpoint.startswith("https://")
    elif where.scheme == "s3":
        if not credentials.get("accesskey") or not credentials.get("secretkey"):
            raise StorageRefused("s3:// needs the 'accesskey' and 'secretkey' credentials")
        access, secret = str(credentials["accesskey"]), str(credentials["secretkey"])
        endpoint = _s3_endpoint(credentials, policy)
        path_style = _flag(credentials.get("bucket_in_path"), True)
        ssl = _flag(credentials.get("ssl"), endpoint.startswith("https://"))
    else:
        raise StorageRefused(f"a {where.scheme}:// data source is not object storage")
    prefix = f"spark.hadoop.fs.s3a.bucket.{where.bucket}."
    settings = SecretSettings({
        prefix + "endpoint": endpoint,
        prefix + "endpoint.region": S3A_REGION,
        prefix + "path.style.access": "true" if path_style else "false",
        prefix + "connection.ssl.enabled": "true" if ssl else "false",
        prefix + "aws.credentials.provider": S3A_CREDENTIALS_PROVIDER,
        prefix + "access.key": access,
        prefix + "secret.key": secret,
    })
    return f"s3a://{where.bucket}/{where.key}", settings


def _pyspark_hadoop_version() -> str:
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    for jar in jars.glob("hadoop-client-api-*.jar"):
        return jar.name[len("hadoop-client-api-"):-len(".jar")]
    raise S3AJarsMissing(f"no hadoop-client-api jar in {jars}: is pyspark installed?")


def s3a_jars() -> list[Path]:
    """The slim S3A jar set (hadoop-aws at pyspark's Hadoop version and the AWS SDK v2
    modules it needs, never the SDK bundle), from ``$SAHARA_ES_S3A_JARS`` or the folder
    ``tools/s3a-jars`` fills (``$SAHARA_ES_CACHE/s3a/<hadoop version>/``, default
    ``.cache/`` in the checkout). ``S3AJarsMissing`` when it is not there."""
    given = os.environ.get("SAHARA_ES_S3A_JARS", "").strip()
    if given:
        folder = Path(given)
    else:
        cache = os.environ.get("SAHARA_ES_CACHE", "").strip()
        base = Path(cache) if cache else Path(__file__).resolve().parents[2] / ".cache"
        folder = base / "s3a" / _pyspark_hadoop_version()
    jars = sorted(folder.glob("*.jar"))
    if not any(j.name.startswith("hadoop-aws-") for j in jars):
        raise S3AJarsMissing(f"no S3A jars in {folder}: run tools/s3a-jars (or set"
                             " SAHARA_ES_S3A_JARS to a folder holding them)")
    return jars


# -- helpers for tests and tools: put, get and list objects ---------------------------------

def put_object(url: str, data: bytes, credentials: Mapping[str, str],
               policy: StoragePolicy) -> None:
    """Store ``data`` at ``swift://container/object`` or ``s3://bucket/key`` (the container
    or bucket is created if missing)."""
    check_url(url, policy)
    where = _location(url)
    if not where.key:
        raise StorageRefused(f"{where.scheme}:// URL names no object")
    if where.scheme == "swift":
        def swift_put(connection: Any) -> None:
            connection.put_container(where.bucket)
            connection.put_object(where.bucket, where.key, data)

        _swift_call(credentials, policy, f"writing {url}", swift_put)
    elif where.scheme == "s3":
        def s3_put(client: Any) -> None:
            try:
                client.head_bucket(Bucket=where.bucket)
            except Exception:
                client.create_bucket(Bucket=where.bucket)
            client.put_object(Bucket=where.bucket, Key=where.key, Body=data)

        _s3_call(credentials, policy, f"writing {url}", s3_put)
    else:
        raise StorageRefused(f"{where.scheme}:// is not object storage")


def get_object(url: str, credentials: Mapping[str, str], policy: StoragePolicy) -> bytes:
    """The bytes at ``swift://`` or ``s3://`` ``url`` (capped as a job binary is)."""
    check_url(url, policy)
    if url.startswith("swift://"):
        return _fetch_swift(url, credentials, policy)
    if url.startswith("s3://"):
        return _fetch_s3(url, credentials, policy)
    raise StorageRefused("only swift:// and s3:// objects are read here")


def list_objects(prefix: str, credentials: Mapping[str, str],
                 policy: StoragePolicy) -> list[str]:
    """The object names (keys) under ``swift://container/<prefix>`` or
    ``s3://bucket/<prefix>``, sorted."""
    check_url(prefix, policy)
    where = _location(prefix)
    if where.scheme == "swift":
        def swift_list(connection: Any) -> list[str]:
            _, found = connection.get_container(where.bucket, prefix=where.key,
                                                full_listing=True)
            return sorted(str(item["name"]) for item in found)

        names: list[str] = _swift_call(credentials, policy, f"listing {prefix}", swift_list)
        return names
    if where.scheme == "s3":
        def s3_list(client: Any) -> list[str]:
            pages: Iterator[dict[str, Any]] = client.get_paginator("list_objects_v2").paginate(
                Bucket=where.bucket, Prefix=where.key)
            return sorted(str(item["Key"]) for page in pages for item in page.get("Contents", []))

        keys: list[str] = _s3_call(credentials, policy, f"listing {prefix}", s3_list)
        return keys
    raise StorageRefused(f"{where.scheme}:// is not object storage")
