# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the VMO add-on profile should hold, and how that differs from what Palette has published.

Packs are compared semantically: values as parsed YAML (so comments, key order and quoting do not
count as changes) and manifests by name and parsed content. Everything here is pure: the runner
feeds it what it read from Palette.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.palette.vmo.plugins.module_utils.vmo.pack_values import (
    VMO_PACK_NAME, ValuesError, dump_yaml, parse_yaml, parse_yaml_documents)

VERSION = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
LAYER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
MANIFEST_PACK_UID = "spectro-manifest-pack"
MANIFEST_LAYER_TAG = "1.0.0"
# Manifest layers go in after the VMO pack (install priority 10), so their VmTemplates and bindings
# find the CRDs and ClusterRoles the pack installs.
MANIFEST_LAYER_VALUES = {"pack": {"spectrocloud.com/install-priority": "20"}}


def parse_version(text, option="version"):
    match = VERSION.match(text or "")
    if not match:
        raise ValuesError("%s: %r is not a profile version (MAJOR.MINOR.PATCH, such as 1.0.0)" % (option, text))
    return tuple(int(part) for part in match.groups())


def version_key(version):
    """Sort key of a profile version; versions not in MAJOR.MINOR.PATCH form sort first."""
    return parse_version(version) if VERSION.match(version or "") else (-1, -1, -1)


def latest_version(versions):
    return max(versions, key=version_key)


def next_version(versions):
    """The patch release after the highest of `versions` (1.0.0 when there is none)."""
    parsed = [parse_version(v) for v in versions if VERSION.match(v or "")]
    if not parsed:
        return "1.0.0"
    major, minor, patch = max(parsed)
    return "%d.%d.%d" % (major, minor, patch + 1)


def profile_labels(tags, labels):
    """Palette labels from Terraform-style tags (`key:value`, or a bare tag) and a labels mapping."""
    result = {}
    for tag in tags or []:
        key, sep, value = tag.partition(":")
        result[key] = value if sep else "spectro__tag"
    result.update({k: str(v) for k, v in (labels or {}).items()})
    return result


def manifest_layers(items):
    """Desired manifest layers from the `manifests` option: one pack per item, one manifest each."""
    layers, errors, seen = [], [], set()
    for index, item in enumerate(items or []):
        name = item.get("name")
        where = "manifests[%d]%s" % (index, " (%s)" % name if name else "")
        if not name or not LAYER_NAME.match(str(name)):
            errors.append("%s: name: %r is not a valid layer name (lower case letters, digits and dashes)" % (where, name))
            continue
        if name in seen or name == VMO_PACK_NAME:
            errors.append("%s: name: %r is used by another layer of the profile" % (where, name))
            continue
        seen.add(name)
        content = item.get("content")
        try:
            docs = _manifest_documents(content, where)
        except ValuesError as err:
            errors.append(str(err))
            continue
        text = content if isinstance(content, str) else "---\n".join(dump_yaml(doc) for doc in docs)
        layers.append({"name": name, "tag": MANIFEST_LAYER_TAG, "type": "manifest", "layer": "addon",
                       "values": dict(MANIFEST_LAYER_VALUES), "manifests": {name: {"content": text, "docs": docs}}})
    return layers, errors


def _manifest_documents(content, where):
    if isinstance(content, str):
        docs = parse_yaml_documents(content, where + ": content")
    elif isinstance(content, dict):
        docs = [content]
    elif isinstance(content, list):
        docs = content
    else:
        raise ValuesError("%s: content: must be YAML text, an object or a list of objects" % where)
    if not docs:
        raise ValuesError("%s: content: holds no object" % where)
    for number, doc in enumerate(docs):
        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind") or \
                not (doc.get("metadata") or {}).get("name"):
            raise ValuesError("%s: content: document %d needs apiVersion, kind and metadata.name" % (where, number + 1))
    return docs


def vmo_pack(tag, pack_uid, registry_uid, values):
    return {"name": VMO_PACK_NAME, "tag": tag, "type": "spectro", "layer": "addon", "uid": pack_uid,
            "registryUid": registry_uid, "values": values, "manifests": {}}


def published_pack(pack_ref, manifest_contents):
    """The comparable form of a published V1PackRef; `manifest_contents` maps manifest name to its YAML."""
    manifests = {}
    for ref in pack_ref.get("manifests") or []:
        text = manifest_contents.get(ref.get("name"), "")
        try:
            docs = parse_yaml_documents(text, "manifest " + str(ref.get("name")))
        except ValuesError:
            docs = [text]
        manifests[ref.get("name")] = {"content": text, "docs": docs, "uid": ref.get("uid")}
    try:
        values = parse_yaml(pack_ref.get("values"), "pack " + str(pack_ref.get("name")))
    except ValuesError:
        values = {"<unparsable values>": pack_ref.get("values")}
    return {"name": pack_ref.get("name"), "tag": pack_ref.get("tag"), "type": pack_ref.get("type") or "spectro",
            "values": values, "manifests": manifests}


def _comparable(pack):
    return (pack.get("tag"), pack.get("type") or "spectro", pack.get("values") or {},
            sorted((name, m["docs"]) for name, m in (pack.get("manifests") or {}).items()))


def changed_packs(desired, current):
    """Names of the packs that differ, are missing, or are extra, in the desired order (extra ones last)."""
    current_by_name = {p["name"]: p for p in current}
    desired_names = [p["name"] for p in desired]
    changed = [p["name"] for p in desired
               if p["name"] not in current_by_name or _comparable(p) != _comparable(current_by_name[p["name"]])]
    return changed + [name for name in current_by_name if name not in desired_names]


def pack_entities(desired, current):
    """Packs for a create or update body; manifests keep the uid Palette gave them (matched by name)."""
    current_by_name = {p["name"]: p for p in current}
    entities = []
    for pack in desired:
        entity = {key: pack[key] for key in ("name", "tag", "type", "layer") if pack.get(key)}
        if pack.get("uid"):
            entity["uid"] = pack["uid"]
        if pack.get("registryUid"):
            entity["registryUid"] = pack["registryUid"]
        if pack["type"] == "manifest":
            entity["uid"] = MANIFEST_PACK_UID
        entity["values"] = dump_yaml(pack["values"]) if pack.get("values") else ""
        if pack.get("values_text") is not None:
            entity["values"] = pack["values_text"]
        manifests = []
        known = (current_by_name.get(pack["name"]) or {}).get("manifests") or {}
        for name, manifest in (pack.get("manifests") or {}).items():
            entry = {"name": name, "content": manifest["content"]}
            if (known.get(name) or {}).get("uid"):
                entry["uid"] = known[name]["uid"]
            manifests.append(entry)
        if manifests:
            entity["manifests"] = manifests
        entities.append(entity)
    return entities


def diff_text(name, version, packs):
    """The packs of a profile as YAML, for Ansible's diff output."""
    if not packs:
        return ""
    document = {"profile": "%s %s" % (name, version) if version else name, "packs": {}}
    for pack in packs:
        entry = {"tag": pack.get("tag"), "type": pack.get("type") or "spectro", "values": pack.get("values") or {}}
        if pack.get("manifests"):
            entry["manifests"] = {n: m["docs"] for n, m in pack["manifests"].items()}
        document["packs"][pack["name"]] = entry
    return dump_yaml(document)
