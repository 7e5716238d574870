"""Stand-in for cdi-apiserver's DataVolume validating webhook at containerized-data-importer v1.65.0.

* pkg/operator/resources/cluster/apiserver.go createDataVolumeValidatingWebhook: ValidatingWebhookConfiguration
  `cdi-api-datavolume-validate` (label cdi.kubevirt.io: cdi-api), webhook `datavolume-validate.cdi.kubevirt.io`
  on CREATE and UPDATE of cdi.kubevirt.io/v1beta1 datavolumes, path /datavolume-validate, failurePolicy Fail,
  sideEffects None, matchPolicy Exact, timeout 30 s, admissionReviewVersions v1 and v1beta1. CDI points it at
  its cdi-api Service; the lab's webhook server is the stand-in virt-api on loopback, whose certificate names
  localhost, so the lab's configuration uses the equivalent `url` form.
* pkg/apiserver/webhooks/datavolume-validate.go dataVolumeValidatingWebhook.Admit, the UPDATE rule: a spec that
  differs from the old one is refused (cause FieldValueDuplicate "Cannot update DataVolume Spec", field
  DataVolume.Spec; toRejectedAdmissionResponse in handler.go: code 422, the message the causes' messages each
  after a space), except a multi-stage (VDDK / imageio with checkpoints) DataVolume whose spec changes only in
  checkpoints / finalCheckpoint. Status and metadata changes pass.

Not mirrored: CREATE validation (validateDataVolumeSpec: sources, sizes, clone permissions; an existing claim
not adoptable, "Destination PVC <ns>/<name> already exists") - the lab admits every create.
"""

import copy
from typing import Dict, List

JSON = Dict
WEBHOOK_CONFIGURATION = "cdi-api-datavolume-validate"
WEBHOOK_NAME = "datavolume-validate.cdi.kubevirt.io"
PATH = "/datavolume-validate"


def _rejected(causes: List[JSON]) -> JSON:
    """pkg/apiserver/webhooks/handler.go toRejectedAdmissionResponse."""
    message = "".join(" " + c["message"] for c in causes)
    return {"allowed": False, "status": {"message": message, "code": 422, "details": {"causes": causes}}}


def _multi_stage(spec: JSON) -> bool:
    source = spec.get("source") or {}
    return bool(spec.get("checkpoints")) and (source.get("vddk") is not None or source.get("imageio") is not None)


def _without_checkpoints(spec: JSON) -> JSON:
    spec = copy.deepcopy(spec)
    spec.pop("finalCheckpoint", None)
    spec.pop("checkpoints", None)
    return spec


def admit_datavolume(request: JSON, _config: JSON) -> JSON:
    """dataVolumeValidatingWebhook.Admit (the UPDATE rule)."""
    resource = request.get("resource") or {}
    if resource.get("group") != "cdi.kubevirt.io" or resource.get("resource") != "datavolumes":
        # validateDataVolumeResource; toAdmissionResponseError
        return {"allowed": False, "status": {"message": "resource is not datavolumes", "code": 400}}
    if request.get("operation") == "UPDATE":
        new = (request.get("object") or {}).get("spec") or {}
        old = (request.get("oldObject") or {}).get("spec") or {}
        admitted = _multi_stage(new) and _without_checkpoints(new) == _without_checkpoints(old)
        if not admitted and new != old:
            return _rejected([{"reason": "FieldValueDuplicate", "message": "Cannot update DataVolume Spec",
                               "field": "DataVolume.Spec"}])
    return {"allowed": True}


def webhook_configuration(port: int, ca_bundle: str) -> JSON:
    """createDataVolumeValidatingWebhook, with the lab's url client config."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_CONFIGURATION, "labels": {"cdi.kubevirt.io": "cdi-api"}},
        "webhooks": [{
            "name": WEBHOOK_NAME,
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["cdi.kubevirt.io"],
                       "apiVersions": ["v1beta1"], "resources": ["datavolumes"], "scope": "*"}],
            "clientConfig": {"url": f"https://localhost:{port}{PATH}", "caBundle": ca_bundle},
            "failurePolicy": "Fail", "sideEffects": "None", "matchPolicy": "Exact", "namespaceSelector": {},
            "objectSelector": {}, "timeoutSeconds": 30, "admissionReviewVersions": ["v1", "v1beta1"],
        }],
    }
