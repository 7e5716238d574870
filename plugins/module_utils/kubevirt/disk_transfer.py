# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Disk images over HTTPS, with Ansible's URL helpers: a download from KubeVirt's export server and an upload
to CDI's upload proxy, both streamed in chunks with a sha256 and progress, TLS verified by default.

Tokens travel in headers only (never in a URL), and no message here quotes a header.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import struct
import tempfile
import time
import zlib

from ansible.module_utils.urls import Request
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.retry import TransientError, call_with_retries

CHUNK = 1024 * 1024
# Server errors and dropped connections are tried again (a download from the start); other answers are final.
RETRYABLE_STATUS = (500, 502, 503, 504)
ATTEMPTS = 4
# Progress milestones kept in the result: every 10 % of a transfer of known size.
MILESTONES = 10


QCOW2_MAGIC = b"QFI\xfb"


def image_info(path):
    """The image's format as CDI's upload server tells it apart (qcow2 or raw) and its virtual size: a qcow2
    header's size field (big-endian u64 at offset 24), else the file's size. CDI converts qcow2 to raw and checks
    the virtual size against the claim's space (pkg/image/qemu.go checkIfURLIsValid)."""
    with open(path, "rb") as src:
        header = src.read(32)
    if len(header) == 32 and header[:4] == QCOW2_MAGIC:
        return {"format": "qcow2", "virtual_size": struct.unpack(">Q", header[24:32])[0]}
    return {"format": "raw", "virtual_size": os.path.getsize(path)}


class TransferError(ModuleFailure):
    """A transfer failed; the message says which object and why (never a token)."""


class Progress(object):
    """Bytes moved over time; `milestones` records each 10 % step (or each 64 MiB when the size is unknown)."""

    def __init__(self, total):
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self.milestones = []
        self._next = 1

    def add(self, count):
        self.done += count
        if self.total:
            while self._next <= MILESTONES and self.done * MILESTONES >= self._next * self.total:
                self._mark(100 * self._next // MILESTONES)
                self._next += 1
        elif self.done >= self._next * 64 * CHUNK:
            self._mark(None)
            self._next += 1

    def _mark(self, percent):
        self.milestones.append({"percent": percent, "bytes": self.done,
                                "elapsed_seconds": round(time.monotonic() - self.started, 3)})

    def summary(self):
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return {"bytes": self.done, "total_bytes": self.total, "duration_seconds": round(elapsed, 3),
                "bytes_per_second": int(self.done / elapsed), "progress": self.milestones}


class CaFile(object):
    """A PEM bundle given as text (KubeVirt's link `cert`) in a temporary file for the TLS layer."""

    def __init__(self, pem):
        self.pem, self.path = pem, None

    def __enter__(self):
        if self.pem:
            handle, self.path = tempfile.mkstemp(suffix=".pem")
            with os.fdopen(handle, "w") as out:
                out.write(self.pem if self.pem.endswith("\n") else self.pem + "\n")
        return self.path

    def __exit__(self, *exc):
        if self.path:
            os.unlink(self.path)


def _request(validate_certs, ca_path, timeout):
    return Request(validate_certs=validate_certs, ca_path=ca_path, timeout=timeout, follow_redirects="none")


def _http_failure(what, err):
    if isinstance(err, HTTPError):
        body = ""
        try:
            body = err.read(400).decode("utf-8", "replace").strip()
        except Exception:  # noqa: BLE001 - the status alone is enough
            body = ""
        return "%s: HTTP %s%s" % (what, err.code, (": " + body) if body else "")
    reason = getattr(err, "reason", err)
    return "%s: %s" % (what, reason)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _transient(err):
    return not isinstance(err, HTTPError) or err.code in RETRYABLE_STATUS


def download(url, headers, dest, what, gzipped=False, validate_certs=True, ca_path=None, timeout=600, sleep=None):
    """GETs `url` into `dest` (written to a temporary file beside it, then renamed). Returns the progress
    summary with `sha256` (of the file) and `image_sha256` (of the disk image: the same for raw, the
    decompressed stream for gzip). A server error or a dropped connection is tried again from the start."""
    def attempt():
        try:
            return _download_once(url, headers, dest, what, gzipped, validate_certs, ca_path, timeout)
        except TransferError as err:
            if getattr(err, "transient", False):
                raise TransientError(str(err), cause=err)
            raise

    kwargs = {"sleep": sleep} if sleep else {}
    return call_with_retries(attempt, attempts=ATTEMPTS, **kwargs)


def _failure(what, err):
    failure = TransferError(_http_failure(what, err))
    failure.transient = _transient(err)
    return failure


def _download_once(url, headers, dest, what, gzipped, validate_certs, ca_path, timeout):
    directory = os.path.dirname(dest) or "."
    handle, partial = tempfile.mkstemp(prefix=".%s." % os.path.basename(dest), suffix=".part", dir=directory)
    file_digest, image_digest = hashlib.sha256(), hashlib.sha256()
    inflate = zlib.decompressobj(31) if gzipped else None
    try:
        try:
            resp = _request(validate_certs, ca_path, timeout).open("GET", url, headers=headers)
        except (HTTPError, URLError, OSError) as err:
            raise _failure(what, err)
        length = resp.headers.get("Content-Length")
        progress = Progress(int(length) if length and length.isdigit() else None)
        with os.fdopen(handle, "wb") as out:
            handle = None
            while True:
                try:
                    chunk = resp.read(CHUNK)
                except (OSError, ValueError) as err:
                    broke = TransferError("%s: the download broke off after %d bytes: %s" % (what, progress.done, err))
                    broke.transient = True
                    raise broke
                if not chunk:
                    break
                out.write(chunk)
                file_digest.update(chunk)
                image_digest.update(inflate.decompress(chunk) if inflate else chunk)
                progress.add(len(chunk))
        if progress.total is not None and progress.done != progress.total:
            broke = TransferError("%s: the download broke off after %d of %d bytes" % (what, progress.done, progress.total))
            broke.transient = True
            raise broke
        if inflate:
            image_digest.update(inflate.flush())
        os.replace(partial, dest)
        partial = None
    finally:
        if handle is not None:
            os.close(handle)
        if partial and os.path.exists(partial):
            os.unlink(partial)
    summary = progress.summary()
    summary.update(sha256=file_digest.hexdigest(), image_sha256=image_digest.hexdigest())
    return summary


class _Reader(object):
    """A file object for the upload body that hashes and counts what is sent."""

    def __init__(self, path, progress):
        self.src = open(path, "rb")
        self.progress = progress
        self.digest = hashlib.sha256()

    def read(self, size=-1):
        chunk = self.src.read(CHUNK if size is None or size < 0 else min(size, CHUNK))
        if chunk:
            self.digest.update(chunk)
            self.progress.add(len(chunk))
        return chunk

    def close(self):
        self.src.close()


def upload(url, headers, src, what, validate_certs=True, ca_path=None, timeout=3600):
    """POSTs the file `src` as the body (Content-Length, application/octet-stream). Returns the progress summary
    with `sha256` of what was sent."""
    size = os.path.getsize(src)
    progress = Progress(size)
    reader = _Reader(src, progress)
    all_headers = dict(headers, **{"Content-Type": "application/octet-stream", "Content-Length": str(size)})
    try:
        resp = _request(validate_certs, ca_path, timeout).open("POST", url, data=reader, headers=all_headers)
        resp.read()
    except (HTTPError, URLError, OSError) as err:
        raise TransferError(_http_failure(what, err))
    finally:
        reader.close()
    summary = progress.summary()
    summary["sha256"] = reader.digest.hexdigest()
    return summary
