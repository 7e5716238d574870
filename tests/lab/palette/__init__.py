"""A Palette REST API simulator, written from Palette's published Swagger ("Palette APIs 4.8") and docs.

Started by `python -m tests.lab up` (module `tests.lab.palette`), HTTPS on 127.0.0.1 with a certificate
signed by the lab CA. The lab env names it: PALETTE_HOST, PALETTE_API_KEY, PALETTE_PROJECT (`lab`),
PALETTE_CA_CERT, LAB_PALETTE_CLUSTER (`lab-cluster`), LAB_PALETTE_REQUEST_LOG.

What it decides, where Palette's documents leave room:

- Ids are 24 hex characters, fresh for each lab (`GET /__lab__/info` lists the fixed ones).
- Auth: header `ApiKey` (401 without it or with another key). Header `ProjectUid` scopes a request
  to a project; without it the scope is the tenant; an unknown project uid is a 403.
- Projects `lab` (holds the cluster) and `empty`. A project sees its own profiles and the tenant's
  (read only: writing a tenant profile from a project is a 403); the tenant sees only its own.
  The cluster is visible from its project and from the tenant scope, not from `empty`.
  `metadata.annotations.scope` (`project` or `tenant`) tells them apart in every profile listing.
- Registry "Public Repo" (system scope) holds `virtual-machine-orchestrator` in tags 4.6.3 and 4.9.9
  (values layout up to 4.9) and 4.10.7 (the `vmo-manager` layout); their default values are the YAML
  files in packs/. A manifest layer is `type: manifest` with uid `spectro-manifest-pack`.
- Errors are Palette's v1Error `{code, message, details, ref}`. A create or clone of an existing name
  and version is a 409 ClusterProfileAlreadyExists (as the provider's mock server answers; the spec
  documents only 201), or 400 / 500 with the `duplicate_profile_status` knob.
- Profiles: POST makes a draft (`?publish=true` publishes it), PUT replaces the draft, PATCH
  publish turns the draft into the published template with the next revision (`spec.published.version`;
  with no draft it does nothing), PATCH metadata changes name, labels, annotations and version,
  clone copies the source (published if the source is) under a new name/version and scope. Name +
  version are unique per scope (409); names are DNS labels, versions x.y.z (400). Values that are not
  a YAML mapping are a 400. A profile attached to the cluster cannot be deleted (409).
- Lists: `POST /v1/dashboard/clusterprofiles`, `GET /v1/packs` and `POST /v1/dashboard/spectroclusters/search`
  return at most 50 items with `listmeta.continue` (pass `?continue=`); the `.../metadata` lists have no
  listmeta in Palette's spec and return everything.
- Rate limits per parent resource as Palette publishes them: 10 requests/s with a burst factor of 5
  (a bucket of 50) for most paths, 50/s for /v1/clusterprofiles, /v1/cloudconfigs and /v1/spectroclusters
  (10/s for .../assets); beyond it 429 with Retry-After (seconds).
- The cluster `lab-cluster` is backed by the lab's real apiserver. Its infra profile `lab-maas-infra`
  (os, k8s, cni, csi layers, always Ready) must stay: PUT profiles must list it, DELETE cannot remove it.
  PATCH profiles adds or updates add-on profiles (published ones only; `replaceWithProfile` swaps an
  attached one, `packValues` override a pack's values for this cluster). The agent (agent.py) picks the
  change up after `apply_delay_seconds` (0 unless a test sets it; Palette's agent takes until its next
  sync): until then `status.packs` goes on showing what it showed before for that profile uid (a re-apply)
  or for the version it replaced, Ready or Error conditions included. Then it applies each pack in a
  thread: the packs show `condition {type: Ready, status: "False"}` (with a new `startTime`) for at
  least `deploy_seconds` (0.5 s), then `Ready/True`, or `Error/True` with a message naming the values key
  of the wrong type or quoting the apiserver's refusal. `status.conditions` (ControlPlaneReady,
  NodesReady) are True unless the `nodes_not_ready_seconds` knob holds NodesReady False. The VMO pack yields the namespaces (kubevirt,
  cdi, the pack's, vmEnabledNamespaces, the golden-images one), the VMO ClusterRoles from
  plugins/module_utils/vmo/roles.py, the KubeVirt CR kubevirt/kubevirt (featureGates exactly
  `additionalFeatureGates`, useEmulation, evictionStrategy, additionalConfig, ...) and the CDI CR
  (featureGates, additionalConfig, additionalSpec), and waits for KubeVirt Deployed. Manifest layers
  are applied as they are (namespaced objects without a namespace go to the layer's `pack.namespace`,
  else `default`). A profile changed after attaching is applied again by the next PATCH.
- DELETE profiles removes the packs from `status.packs` but uninstalls nothing: KubeVirt is shared by
  the whole lab. `/__lab__/reset` gives the lab back.
- Kubeconfigs (kubeconfigs.py): `GET .../assets/kubeconfig` and `.../assets/adminKubeconfig` of lab-cluster
  return the lab's admin kubeconfig. `GET .../assets/kubeconfigclient` returns a kubeconfig whose user is a
  client certificate signed by the lab CA, CN `palette-<cluster>-client` with no organisation (so not
  system:masters), which the ClusterRoleBinding `palette-<cluster>-client` (labelled
  `palette.lab/kubeconfig-client=true`, made when the simulator starts and again by `/__lab__/reset` if it
  is missing) binds to cluster-admin; server is the real lab apiserver, certificate-authority-data embedded.
  The certificates are minted once per lab, in `<lab state>/palette-kubeconfigs/`, so the text is stable.
  Lab decision: real Palette hands out its own cluster's credentials; the lab's clusters share one
  apiserver, so each cluster is told apart by the user its kubeconfig carries.
- `PUT config/rbacs` replaces the cluster's bindings and makes them before answering 204:
  `spectro-on-demand-<n>` (n counts the bindings of the body in order) labelled
  `spectrocloud.com/clusterRbac=true` and `spectrocloud.com/clusterId=<uid>`; bindings no longer listed
  are deleted.
- Every API request is one JSON line in the request log: time, method, path, query, project, status,
  `mutating` (POST/PUT/PATCH/DELETE except the read-only list and search POSTs) and any injected fault.

Lab endpoints (no ApiKey, never logged, never called by the collection):

- `GET /__lab__/health`, `GET /__lab__/info` (cluster, registry, project, pack and infra profile uids;
  `cluster_client_user` and `cluster_client_binding`: lab-cluster's client identity and its binding).
- `PUT /__lab__/faults` with any of: `http_429` (next n requests get 429, with `retry_after` seconds
  in a Retry-After header unless `retry_after_header` is false), `http_5xx` (next n get `status_5xx`,
  default 503), `drop_connections` (next n are cut), `lose_write_answers` (next n writes take effect,
  then are cut before their answer), `refuse_writes` (next n writes are refused with `refuse_status`,
  default 500, and not carried out), `slow_seconds` (every request waits first), `rate_limit` (false
  turns Palette's limits off), `deploy_seconds`, `apply_delay_seconds`, `duplicate_profile_status`
  (409, 400 or 500), `nodes_not_ready_seconds` (NodesReady False for that long from now). The answer
  lists every knob; `/__lab__/reset` puts them back.
- `POST /__lab__/seed` `{count, prefix, project (name, "" for tenant), version}`: published add-on profiles.
- `POST /__lab__/reset`: faults, limits, profiles, attachments and RBAC as in a fresh lab, then the
  baseline below.
- `POST /__lab__/baseline`: the KubeVirt and CDI CRs as tests/lab/bootstrap.py made them, and the
  namespaces, manifest objects and bindings the agent created deleted (the VMO ClusterRoles stay).
"""
