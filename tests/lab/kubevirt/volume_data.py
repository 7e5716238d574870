"""The bytes on the lab's volumes: what the lab CSI driver (csi.lab.palette.vmo) stores for each volume.

A real CSI driver keeps a volume's blocks on its storage back end; the lab keeps them in one file per
volume, `<lab state dir>/volumes/<volumeHandle>.img`, named by the PV's `spec.csi.volumeHandle`
(`lab-vol-<claim uid>`, storage.py `_provision`). A volume nobody wrote to has no file and reads as empty.

Who writes them, each as the product component it stands for:
* CDI's importer (pkg/importer, run by import-controller.go for http / registry / s3 / gcs / blank
  DataVolumes; datavolume.py `reconcile_import`) when the importer pod would terminate: an http(s) source on
  127.0.0.1 is downloaded for real (the lab's own servers, verified with the lab CA); any other source, which
  the lab cannot reach, gets a generated image: `generated_image(source)`, a deterministic pseudo-random raw
  image of GENERATED_SIZE bytes that starts with a text line naming the source, so two DataVolumes of one
  source hold the same bytes; a blank source is GENERATED_SIZE zero bytes.
* CDI's clone (host-assisted: the source pod streams the claim into the target's upload server,
  pkg/controller/clone-controller.go) copies the source volume's bytes.
* CDI's upload server (pkg/uploadserver/uploadserver.go, behind the upload proxy, cdi_upload.py) writes the
  uploaded stream.
* KubeVirt's export server (virt-exportserver, vm_export.py) reads them and serves them as disk.img.

The sizes are the content's, not the claim's: a 10Gi claim with a 1 MiB image is a 1 MiB file (sparse, as
a raw image of a thin volume).
"""

import hashlib
import os
import ssl
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator, Optional

from .. import paths
from ..kube import JSON

GENERATED_SIZE = 1024 * 1024
CHUNK = 64 * 1024
_lock = threading.Lock()


def data_dir() -> Path:
    return paths.state_dir() / "volumes"


def volume_handle(pv: Optional[JSON]) -> Optional[str]:
    return ((pv or {}).get("spec") or {}).get("csi", {}).get("volumeHandle") if pv else None


def path_for(handle: str) -> Path:
    if not handle or "/" in handle or handle.startswith("."):
        raise ValueError(f"not a volume handle: {handle!r}")
    return data_dir() / f"{handle}.img"


def exists(handle: str) -> bool:
    return path_for(handle).exists()


def size(handle: str) -> int:
    path = path_for(handle)
    return path.stat().st_size if path.exists() else 0


def write(handle: str, data: bytes) -> None:
    write_stream(handle, iter((data,)))


def write_stream(handle: str, chunks: Iterator[bytes]) -> int:
    """Writes the volume's content from a stream, atomically (a partial write leaves the old content)."""
    target = path_for(handle)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp-{os.getpid()}-{threading.get_ident()}")
    written = 0
    with open(tmp, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
            written += len(chunk)
    with _lock:
        os.replace(tmp, target)
    return written


def read_stream(handle: str) -> Iterator[bytes]:
    path = path_for(handle)
    if not path.exists():
        return
    with open(path, "rb") as src:
        while True:
            chunk = src.read(CHUNK)
            if not chunk:
                return
            yield chunk


def sha256(handle: str) -> str:
    digest = hashlib.sha256()
    for chunk in read_stream(handle):
        digest.update(chunk)
    return digest.hexdigest()


def copy(source: str, target: str) -> int:
    return write_stream(target, read_stream(source))


def generated_image(source: str, blank: bool = False) -> bytes:
    """A deterministic raw image for a source the lab cannot reach (see the module docstring)."""
    if blank:
        return bytes(GENERATED_SIZE)
    header = f"palette.vmo lab disk image; source {source}\n".encode()
    out = bytearray(header)
    counter = 0
    seed = hashlib.sha256(source.encode()).digest()
    while len(out) < GENERATED_SIZE:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:GENERATED_SIZE])


def is_loopback(url: str) -> bool:
    parsed = urllib.parse.urlparse(url)
    return parsed.scheme in ("http", "https") and parsed.hostname in ("127.0.0.1", "localhost", "::1")


def fetch(url: str, ca_file: Optional[str] = None, timeout: float = 30.0) -> Iterator[bytes]:
    """The importer's http data source (pkg/importer/http-datasource.go) for a URL on loopback."""
    context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=context))
    with opener.open(url, timeout=timeout) as resp:
        while True:
            chunk = resp.read(CHUNK)
            if not chunk:
                return
            yield chunk


def import_content(handle: str, source_kind: str, endpoint: str, ca_file: Optional[str] = None) -> int:
    """What the importer pod writes onto the volume for a DataVolume source (see the module docstring)."""
    if source_kind == "http" and endpoint and is_loopback(endpoint):
        return write_stream(handle, fetch(endpoint, ca_file))
    if source_kind == "none":
        data = generated_image("blank", blank=True)
    else:
        data = generated_image(f"{source_kind}:{endpoint}")
    write(handle, data)
    return len(data)


def remove(handle: str) -> None:
    try:
        path_for(handle).unlink()
    except FileNotFoundError:
        pass
