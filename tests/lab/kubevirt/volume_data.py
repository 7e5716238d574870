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
* The lab driver's CreateSnapshot (snapshot.py, for the external-snapshotter's csi-snapshotter) keeps a copy
  under the snapshot's handle (`lab-snap-<VolumeSnapshot uid>`), DeleteSnapshot removes it, and CreateVolume
  with that snapshot as content source (storage.py, a claim whose dataSource is the VolumeSnapshot) starts the
  new volume from it: what a claim restored from a snapshot (KubeVirt's restore, clone, snapshot export) holds.
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


def qcow2_image(raw: bytes, cluster_bits: int = 16, compressed: bool = False) -> bytes:
    """A qcow2 (version 2) file whose guest content is `raw` (its size rounded up to 512 bytes, as qemu-img
    rounds it): header, L1 and L2 tables, a refcount table with one block, one host cluster per non-zero guest
    cluster (deflated when `compressed`, as qemu-img convert -c writes them); zero clusters stay unallocated.
    qemu-img reads it; the lab's tests hand it to the upload proxy and to kubevirt_disk_upload."""
    import struct
    import zlib
    cluster = 1 << cluster_bits
    per_l2 = cluster // 8
    size = -(-len(raw) // 512) * 512
    guest = -(-size // cluster)
    l2_count = max(1, -(-guest // per_l2))
    l1_offset, refcount_table, refcount_block, l2_offset = cluster, 2 * cluster, 3 * cluster, 4 * cluster
    data = bytearray()
    data_start = (4 + l2_count) * cluster
    l2 = [0] * (l2_count * per_l2)
    counts = {c: 1 for c in range(data_start // cluster)}  # header, L1, refcount table and block, L2 tables
    for index in range(guest):
        chunk = raw[index * cluster:(index + 1) * cluster].ljust(cluster, b"\0")
        if not chunk.strip(b"\0"):
            continue
        host = data_start + len(data)
        if compressed:
            deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
            packed = deflate.compress(chunk) + deflate.flush()
            bits = 62 - (cluster_bits - 8)
            sectors = -(-((host & 511) + len(packed)) // 512)
            l2[index] = (1 << 62) | ((sectors - 1) << bits) | host
            for host_cluster in range(host // cluster, (host + sectors * 512 - 1) // cluster + 1):
                counts[host_cluster] = counts.get(host_cluster, 0) + 1
            data += packed
        else:
            l2[index] = (1 << 63) | host  # QCOW_OFLAG_COPIED
            counts[host // cluster] = 1
            data += chunk
    data += b"\0" * (-len(data) % cluster)
    used = (data_start + len(data)) // cluster
    header = struct.pack(">4sIQIIQIIQQIIQ", b"QFI\xfb", 2, 0, 0, cluster_bits, size, 0, l2_count, l1_offset,
                         refcount_table, 1, 0, 0).ljust(cluster, b"\0")
    l1 = b"".join(struct.pack(">Q", (1 << 63) | (l2_offset + i * cluster)) for i in range(l2_count)).ljust(cluster, b"\0")
    refcounts = struct.pack(">Q", refcount_block).ljust(cluster, b"\0")
    block = struct.pack(f">{used}H", *(counts.get(c, 0) for c in range(used))).ljust(cluster, b"\0")  # refcount_order 4: 16-bit counts
    tables = struct.pack(f">{len(l2)}Q", *l2)
    return header + l1 + refcounts + block + tables + bytes(data)
