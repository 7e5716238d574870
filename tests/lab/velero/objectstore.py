"""The lab's object storage for Velero: one folder per bucket under the lab's state directory, and an HTTP
server that serves the signed download URLs a DownloadRequest hands out.

Velero talks to object storage through its ObjectStore plugin interface (pkg/plugin/velero/object_store.go:
PutObject, ObjectExists, GetObject, ListCommonPrefixes, DeleteObject, CreateSignedURL); the lab's
BackupStorageLocation names provider `aws` with a MinIO-style configuration, as Velero's MinIO example does, and
this module plays that store: keys are paths below the bucket's folder. The bucket itself is made when the
stand-in starts, as the `minio-setup` job of Velero's examples/minio/00-minio-deployment.yaml runs `mc mb`.
"""

import calendar
import hashlib
import hmac
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import List
from urllib.parse import parse_qs, quote, unquote, urlsplit

BUCKET = "velero"


class NoSuchBucket(Exception):
    pass


class ObjectStore:
    def __init__(self, root: Path):
        self.root = root
        self.key = secrets.token_bytes(32)
        self.url = ""

    def make_bucket(self, bucket: str) -> None:
        (self.root / bucket).mkdir(parents=True, exist_ok=True)

    def _path(self, bucket: str, key: str) -> Path:
        base = self.root / bucket
        if not base.is_dir():
            # what the aws plugin reports for a missing bucket (s3 NoSuchBucket)
            raise NoSuchBucket(f"NoSuchBucket: The specified bucket does not exist: {bucket}")
        path = (base / key).resolve()
        if base.resolve() not in path.parents and path != base.resolve():
            raise ValueError(f"key {key!r} leaves the bucket")
        return path

    def put_object(self, bucket: str, key: str, body: bytes) -> None:
        path = self._path(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(body)
        tmp.replace(path)

    def object_exists(self, bucket: str, key: str) -> bool:
        return self._path(bucket, key).is_file()

    def get_object(self, bucket: str, key: str) -> bytes:
        return self._path(bucket, key).read_bytes()

    def list_common_prefixes(self, bucket: str, prefix: str, delimiter: str = "/") -> List[str]:
        base = self._path(bucket, prefix) if prefix else self._path(bucket, "")
        if not base.is_dir():
            return []
        # an object store has no empty folders: a prefix exists while an object has a key under it
        return sorted(prefix + p.name + delimiter for p in base.iterdir()
                      if p.is_dir() and any(f.is_file() for f in p.rglob("*")))

    def list_objects(self, bucket: str, prefix: str) -> List[str]:
        base = self._path(bucket, "")
        start = self._path(bucket, prefix) if prefix else base
        if not start.exists():
            return []
        return sorted(str(p.relative_to(base)) for p in start.rglob("*") if p.is_file())

    def delete_object(self, bucket: str, key: str) -> None:
        path = self._path(bucket, key)
        if path.exists():
            path.unlink()
        base = self._path(bucket, "")
        parent = path.parent
        while parent != base and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()  # no empty folders left behind
            parent = parent.parent

    # -- CreateSignedURL and the server that honours it --------------------------------------------------

    def _signature(self, bucket: str, key: str, expires: int) -> str:
        return hmac.new(self.key, f"{bucket}/{key}/{expires}".encode(), hashlib.sha256).hexdigest()

    def create_signed_url(self, bucket: str, key: str, ttl: float) -> str:
        """A presigned GET URL in SigV4's query form, as the aws plugin's CreateSignedURL returns one: X-Amz-Date
        (signing time), X-Amz-Expires (a lifetime in seconds) and X-Amz-Signature (here an HMAC of the lab's key;
        no X-Amz-Credential or X-Amz-SignedHeaders, the lab store has no credentials)."""
        signed = int(time.time())
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(signed))
        lifetime = int(ttl)
        return (f"{self.url}/{quote(bucket)}/{quote(key)}?X-Amz-Date={stamp}&X-Amz-Expires={lifetime}"
                f"&X-Amz-Signature={self._signature(bucket, key, signed + lifetime)}")

    def serve(self) -> None:
        store = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                bucket, _slash, key = unquote(parts.path).lstrip("/").partition("/")
                query = parse_qs(parts.query)
                try:
                    signed = calendar.timegm(time.strptime(query.get("X-Amz-Date", [""])[0], "%Y%m%dT%H%M%SZ"))
                    expires = signed + int(query.get("X-Amz-Expires", ["0"])[0])
                    signature = query.get("X-Amz-Signature", [""])[0]
                except ValueError:
                    expires, signature = 0, ""
                if not hmac.compare_digest(signature, store._signature(bucket, key, expires)) or expires < time.time():
                    self._answer(403, b"<Error><Code>AccessDenied</Code><Message>Request has expired or the signature"
                                      b" does not match</Message></Error>")
                    return
                try:
                    body = store.get_object(bucket, key)
                except (OSError, NoSuchBucket, ValueError):
                    self._answer(404, b"<Error><Code>NoSuchKey</Code></Error>")
                    return
                self._answer(200, body, "application/octet-stream")

            def _answer(self, status: int, body: bytes, content_type: str = "application/xml") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True, name="velero-objectstore").start()
