"""Stand-in for virt-api's `subresources.kubevirt.io` server, reached through the apiserver's aggregator.

The apiserver authenticates and authorizes the caller (RBAC on e.g. `virtualmachines/start`) before it
proxies here with the front-proxy client certificate, which this server requires. The handlers
follow KubeVirt's `pkg/virt-api/rest/lifecycle.go`: the same checks, status codes and messages.

The same server answers the apiserver's admission webhook calls (AdmissionReview POSTs on the paths
of `admission.ADMITTERS`), as virt-api does on its one port. As virt-api's TLS config
(`tls.VerifyClientCertIfGiven`), a client certificate is verified when given; the webhook client
sends none, while the subresource routes answer only the aggregator, which does.
"""

import json
import logging
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Optional, Tuple

from ..kube import JSON, Kube, KubeError, object_path
from . import admission, migration
from . import hotplug
from . import vm_export
from . import vm_snapshot
from . import vm_clone, vm_restore
from . import vmi_update
from .controller import now, is_final, is_paused, phase, run_strategy

log = logging.getLogger("standin.virt-api")

GROUP = "subresources.kubevirt.io"
VERSIONS = ("v1", "v1alpha3")
JSONPATCH_TEST_ERR = "jsonpatch test operation does not apply"

# The subresources this stand-in serves; a later behaviour adds its verb here and a handler below.
VM_VERBS = ("start", "stop", "restart", "migrate")
VMI_VERBS = ("pause", "unpause")
# pkg/virt-api/rest/volumes.go: volume hotplug on VMs and VMIs (hotplug.py)
VOLUME_VERBS = ("addvolume", "removevolume")
VM_VERBS += VOLUME_VERBS
VMI_VERBS += VOLUME_VERBS


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: Optional[JSON] = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> JSON:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "details": self.details, "code": self.code}


def conflict(resource: str, name: str, why: str) -> ApiError:
    # Matches k8s.io/apimachinery errors.NewConflict(kubevirt.io resource, name, err).
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {resource}.kubevirt.io "{name}": {why}',
                    {"name": name, "group": "kubevirt.io", "kind": resource})


def not_found(resource: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource}.kubevirt.io "{name}" not found',
                    {"name": name, "group": "kubevirt.io", "kind": resource})


def internal(err: Exception) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {err}", {"causes": [{"message": str(err)}]})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def discovery(version: str) -> JSON:
    resources = [{"name": f"virtualmachines/{verb}", "singularName": "", "namespaced": True,
                  "kind": "VirtualMachine", "verbs": ["update"]} for verb in VM_VERBS]
    resources += [{"name": f"virtualmachineinstances/{verb}", "singularName": "", "namespaced": True,
                   "kind": "VirtualMachineInstance", "verbs": ["update"]} for verb in VMI_VERBS]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{version}",
            "resources": resources}


class SubresourceHandlers:
    def __init__(self, kube: Kube):
        self.kube = kube

    def _get(self, resource: str, plural: str, namespace: str, name: str) -> Optional[JSON]:
        try:
            return self.kube.get(object_path("kubevirt.io/v1", plural, name, namespace))
        except KubeError as err:
            if err.status == 404:
                return None
            raise internal(err)

    def _vm(self, namespace: str, name: str) -> JSON:
        vm = self._get("virtualmachine", "virtualmachines", namespace, name)
        if vm is None:
            raise not_found("virtualmachine", name)
        return vm

    def _vmi(self, namespace: str, name: str) -> Optional[JSON]:
        return self._get("virtualmachineinstance", "virtualmachineinstances", namespace, name)

    def _patch(self, path: str, ops: list, dry_run: bool, name: str) -> None:
        try:
            self.kube.json_patch(path, ops, **({"dryRun": "All"} if dry_run else {}))
        except KubeError as err:
            if JSONPATCH_TEST_ERR in str(err.body):
                raise conflict("virtualmachine", name, str(err))
            raise internal(err)

    @staticmethod
    def _change_request_ops(vm: JSON, *changes: JSON) -> list:
        status = vm.get("status") or {}
        if not status:
            return [{"op": "add", "path": "/status", "value": {"stateChangeRequests": list(changes)}}]
        current = status.get("stateChangeRequests") or []
        ops: list = [{"op": "test", "path": "/status/stateChangeRequests",
                      "value": status.get("stateChangeRequests")}]
        if not current:
            ops.append({"op": "add", "path": "/status/stateChangeRequests", "value": list(changes)})
        elif len(changes) == 1 and changes[0]["action"] == "Stop":
            ops.append({"op": "replace", "path": "/status/stateChangeRequests", "value": list(changes)})
        else:
            raise internal(Exception("unable to complete request: stop/start already underway"))
        if status.get("startFailure"):
            ops.append({"op": "remove", "path": "/status/startFailure"})
        return ops

    @staticmethod
    def _running_patch(vm: JSON, running: bool) -> list:
        spec = vm.get("spec", {})
        if spec.get("runStrategy") is not None:
            return [{"op": "test", "path": "/spec/runStrategy", "value": spec["runStrategy"]},
                    {"op": "replace", "path": "/spec/runStrategy", "value": "Always" if running else "Halted"}]
        return [{"op": "test", "path": "/spec/running", "value": spec.get("running")},
                {"op": "replace", "path": "/spec/running", "value": running}]

    def start(self, namespace: str, name: str, body: JSON) -> int:
        vm = self._vm(namespace, name)
        vmi = self._vmi(namespace, name)
        if vmi is not None and not is_final(vmi) and phase(vmi) not in ("", "Unknown"):
            raise conflict("virtualmachine", name, "VM is already running")
        paused = bool(body.get("paused"))
        dry_run = bool(body.get("dryRun"))
        data = {"paused": "true"} if paused else {}
        strategy = run_strategy(vm)
        path = object_path("kubevirt.io/v1", "virtualmachines", name, namespace)
        if strategy == "Halted":
            if paused:
                self._patch(path + "/status", self._change_request_ops(vm, {"action": "Start", "data": data}),
                            dry_run, name)
            else:
                self._patch(path, self._running_patch(vm, True), dry_run, name)
        elif strategy in ("RerunOnFailure", "Manual"):
            needs_restart = ((strategy == "RerunOnFailure" and phase(vmi) == "Succeeded")
                             or (strategy == "Manual" and vmi is not None and is_final(vmi)))
            if strategy == "RerunOnFailure" and phase(vmi) == "Failed":
                raise conflict("virtualmachine", name, "RerunOnFailure does not support starting VM from failed state")
            start = {"action": "Start", **({"data": data} if data else {})}
            changes = ([{"action": "Stop", "uid": vmi["metadata"]["uid"]}, start] if needs_restart else [start])
            self._patch(path + "/status", self._change_request_ops(vm, *changes), dry_run, name)
        else:
            raise conflict("virtualmachine", name, f"{strategy} does not support manual start requests")
        return 202

    def stop(self, namespace: str, name: str, body: JSON) -> int:
        vm = self._vm(namespace, name)
        strategy = run_strategy(vm)
        vmi = self._vmi(namespace, name)
        dry_run = bool(body.get("dryRun"))
        path = object_path("kubevirt.io/v1", "virtualmachines", name, namespace)
        if strategy in ("Halted", "RerunOnFailure", "Manual"):
            if vmi is None or is_final(vmi):
                raise conflict("virtualmachine", name, "VM is not running")
            if strategy == "Halted" and body.get("gracePeriod") is None:
                raise conflict("virtualmachine", name,
                               "Halted only supports manual stop requests with a shorter graceperiod")
            ops = self._change_request_ops(vm, {"action": "Stop", "uid": vmi["metadata"]["uid"]})
            self._patch(path + "/status", ops, dry_run, name)
        else:
            self._patch(path, self._running_patch(vm, False), dry_run, name)
        return 202

    def restart(self, namespace: str, name: str, body: JSON) -> int:
        grace = body.get("gracePeriodSeconds")
        if grace is not None and grace > 0:
            raise bad_request("For force restart, only gracePeriod=0 is supported for now")
        if grace is not None and grace < 0:
            raise bad_request("gracePeriod has to be greater or equal to 0")
        vm = self._vm(namespace, name)
        strategy = run_strategy(vm)
        if strategy in ("Halted", "Once"):
            raise conflict("virtualmachine", name, f"RunStategy {strategy} does not support manual restart requests")
        vmi = self._vmi(namespace, name)
        if vmi is None:
            raise conflict("virtualmachine", name, "VM is not running: Halted")
        ops = self._change_request_ops(vm, {"action": "Stop", "uid": vmi["metadata"]["uid"]}, {"action": "Start"})
        self._patch(object_path("kubevirt.io/v1", "virtualmachines", name, namespace) + "/status", ops,
                    bool(body.get("dryRun")), name)
        return 202

    def migrate(self, namespace: str, name: str, body: JSON) -> int:
        """lifecycle.go MigrateVMRequestHandler: a VirtualMachineInstanceMigration named kubevirt-migrate-vm-*."""
        self._vm(namespace, name)
        vmi = self._vmi(namespace, name)
        if vmi is None:
            raise not_found("virtualmachineinstance", name)
        if phase(vmi) != "Running":
            raise conflict("virtualmachine", name, "VM is not running")
        spec: JSON = {"vmiName": name}
        if body.get("addedNodeSelector"):
            spec["addedNodeSelector"] = body["addedNodeSelector"]
        dry_run = body.get("dryRun") or []
        try:
            self.kube.create(object_path("kubevirt.io/v1", migration.PLURAL, namespace=namespace),
                             {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
                              "metadata": {"generateName": "kubevirt-migrate-vm-"}, "spec": spec},
                             **({"dryRun": "All"} if "All" in dry_run else {}))
        except KubeError as err:
            raise internal(Exception((err.body or {}).get("message") if isinstance(err.body, dict) else str(err)))
        return 202

    def _volume(self, namespace: str, name: str, body: JSON, add: bool, ephemeral: bool) -> int:
        """volumes.go VM/VMI Add/RemoveVolumeRequestHandler."""
        config = getattr(self, "kubevirt_config", dict)()
        return hotplug.volume_request(self.kube, config, namespace, name, body, add, ephemeral)

    def addvolume(self, namespace: str, name: str, body: JSON) -> int:
        return self._volume(namespace, name, body, True, False)

    def removevolume(self, namespace: str, name: str, body: JSON) -> int:
        return self._volume(namespace, name, body, False, False)

    def vmi_addvolume(self, namespace: str, name: str, body: JSON) -> int:
        return self._volume(namespace, name, body, True, True)

    def vmi_removevolume(self, namespace: str, name: str, body: JSON) -> int:
        return self._volume(namespace, name, body, False, True)

    def _running_vmi(self, namespace: str, name: str) -> JSON:
        vmi = self._vmi(namespace, name)
        if vmi is None:
            raise not_found("virtualmachineinstance", name)
        return vmi

    def _set_paused(self, vmi: JSON, paused: bool, dry_run: bool) -> None:
        conditions = [c for c in vmi.get("status", {}).get("conditions") or [] if c.get("type") != "Paused"]
        if paused:
            conditions.append({"type": "Paused", "status": "True", "reason": "PausedByUser",
                               "message": "VMI was paused by user", "lastProbeTime": None,
                               "lastTransitionTime": now()})
        meta = vmi["metadata"]
        path = object_path("kubevirt.io/v1", "virtualmachineinstances", meta["name"], meta["namespace"])
        self.kube.merge_patch(path, {"status": {"conditions": conditions}}, **({"dryRun": "All"} if dry_run else {}))

    def pause(self, namespace: str, name: str, body: JSON) -> int:
        vmi = self._running_vmi(namespace, name)
        if phase(vmi) != "Running":
            raise conflict("virtualmachineinstance", name, "VM is not running")
        if is_paused(vmi):
            raise conflict("virtualmachineinstance", name, "VMI is already paused")
        self._set_paused(vmi, True, "All" in (body.get("dryRun") or []))
        return 200

    def unpause(self, namespace: str, name: str, body: JSON) -> int:
        vm = self._get("virtualmachine", "virtualmachines", namespace, name)
        if vm is not None and vm.get("status", {}).get("snapshotInProgress"):
            raise conflict("virtualmachine", name, "VM snapshot is in progress")
        vmi = self._running_vmi(namespace, name)
        if phase(vmi) != "Running":
            raise conflict("virtualmachineinstance", name, "VMI is not running")
        if not is_paused(vmi):
            raise conflict("virtualmachineinstance", name, "VMI is not paused")
        self._set_paused(vmi, False, "All" in (body.get("dryRun") or []))
        return 200


ROUTE = re.compile(r"^/apis/subresources\.kubevirt\.io/(?P<version>v1|v1alpha3)/namespaces/(?P<ns>[^/]+)/"
                   r"(?P<plural>virtualmachines|virtualmachineinstances)/(?P<name>[^/]+)/(?P<verb>[a-z]+)$")


def make_handler(handlers: SubresourceHandlers, kubevirt_config: Callable[[], JSON],
                 controller_users: Tuple[str, ...] = ()) -> type:
    # The webhooks that read the cluster (virt-api's migration admitters) beside admission.ADMITTERS;
    # paths from virt-operator components/webhooks.go MigrationCreateValidatePath / MigrationMutatePath.
    admitters: Dict[str, Callable[[JSON, JSON], JSON]] = {
        **admission.ADMITTERS,
        "/migration-validate-create": migration.make_create_admitter(handlers.kube, controller_users),
        "/migration-mutate-create": migration.mutate_migration_create,
        "/migration-validate-update": migration.admit_migration_update,
        # components/webhooks.go VMIUpdateValidatePath / VMIMutatePath (vmi_update.py)
        "/virtualmachineinstances-validate-update": vmi_update.make_update_admitter(
            vmi_update.kubevirt_service_accounts(controller_users)),
        "/virtualmachineinstances-mutate": vmi_update.mutate_vmi,
        vm_export.VALIDATE_PATH: vm_export.admit_vm_export,  # pkg/storage/admitters/vmexport.go
        "/virtualmachinesnapshots-validate": vm_snapshot.admit_vm_snapshot,  # pkg/storage/admitters/vmsnapshot.go
        vm_restore.ADMIT_PATH: vm_restore.make_admitter(handlers.kube),  # pkg/storage/admitters/vmrestore.go
        vm_clone.ADMIT_PATH: vm_clone.admit_clone,  # admitters/vmclone-admitter.go
        vm_clone.MUTATE_PATH: vm_clone.mutate_clone,  # mutators/clone-create-mutator.go
    }
    verbs: Dict[Tuple[str, str], Callable[[str, str, JSON], int]] = {}
    for verb in VM_VERBS:
        verbs[("virtualmachines", verb)] = getattr(handlers, verb)
    handlers.kubevirt_config = kubevirt_config  # the volume verbs read the feature gates
    for verb in VMI_VERBS:
        verbs[("virtualmachineinstances", verb)] = getattr(handlers, "vmi_" + verb, None) or getattr(handlers, verb)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:
            log.info("%s %s", self.headers.get("X-Remote-User", "-"), fmt % args)

        def _send(self, code: int, body: Optional[JSON]) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _from_aggregator(self) -> bool:
            """Only the aggregator's front-proxy certificate (verified by the TLS layer) carries a user."""
            if self.connection.getpeercert():
                return True
            self._send(401, ApiError(401, "Unauthorized", "Unauthorized").status())
            return False

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            admit = admitters.get(self.path.split("?")[0])
            if admit is None:
                return self._send(404, ApiError(404, "NotFound", "the server could not find the requested resource").status())
            try:
                body = json.loads(raw)
            except json.JSONDecodeError as err:
                return self._send(400, bad_request(f"contentType=application/json, error: {err}").status())
            answer = admission.review(body, admit, kubevirt_config())
            if not answer["response"]["allowed"]:
                log.info("admission %s %s/%s: %s", self.path, (body.get("request") or {}).get("namespace", ""),
                         (body.get("request") or {}).get("name", ""), answer["response"]["status"]["message"])
            self._send(200, answer)

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            path = self.path.split("?")[0].rstrip("/")
            if not (path.endswith("/healthz") or self._from_aggregator()):
                return None
            for version in VERSIONS:
                if path == f"/apis/{GROUP}/{version}":
                    return self._send(200, discovery(version))
            if path.endswith("/healthz") or path == "/healthz":
                return self._send(200, {"status": "ok"})
            if path == f"/apis/{GROUP}":
                versions = [{"groupVersion": f"{GROUP}/{v}", "version": v} for v in VERSIONS]
                return self._send(200, {"kind": "APIGroup", "apiVersion": "v1", "name": GROUP,
                                        "versions": versions, "preferredVersion": versions[0]})
            self._send(404, ApiError(404, "NotFound", "the server could not find the requested resource").status())

        def do_PUT(self) -> None:  # noqa: N802 - http.server naming
            match = ROUTE.match(self.path.split("?")[0])
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not self._from_aggregator():
                return None
            if not match or (match["plural"], match["verb"]) not in verbs:
                return self._send(404, ApiError(404, "NotFound", "the server could not find the requested resource").status())
            try:
                body = json.loads(raw) if raw.strip() else {}
                code = verbs[(match["plural"], match["verb"])](match["ns"], match["name"], body or {})
                self._send(code, None)
            except json.JSONDecodeError as err:
                self._send(400, bad_request(f"Can not unmarshal Request body to struct, error: {err}").status())
            except ApiError as err:
                self._send(err.code, err.status())
            except Exception as err:  # noqa: BLE001 - answer like virt-api does on anything unexpected
                log.exception("PUT %s", self.path)
                self._send(500, internal(err).status())

    return Handler


def serve(kube: Kube, port: int, cert: str, key: str, front_proxy_ca: str,
          kubevirt_config: Callable[[], JSON] = dict, controller_users: Tuple[str, ...] = ()) -> ThreadingHTTPServer:
    """Starts the HTTPS server in a thread. `kubevirt_config` gives the KubeVirt CR's spec.configuration."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(front_proxy_ca)
    context.verify_mode = ssl.CERT_OPTIONAL
    handler = make_handler(SubresourceHandlers(kube), kubevirt_config, controller_users)
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True, name="virt-api").start()
    return server
