"""A Palette REST API simulator, written from Palette's published Swagger ("Palette APIs 4.8") and docs.

Started by `python -m tests.lab up` (module `tests.lab.palette`), HTTPS on 127.0.0.1 with a certificate
signed by the lab CA. The lab env names it: PALETTE_HOST, PALETTE_API_KEY, PALETTE_PROJECT (`lab`),
PALETTE_CA_CERT, LAB_PALETTE_CLUSTER (`lab-cluster`), LAB_PALETTE_MAAS_ACCOUNT (`lab-maas`),
LAB_PALETTE_REQUEST_LOG.

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
  return the lab's admin kubeconfig, self-contained as Palette's are (its CA inline, no file path).
  `GET .../assets/kubeconfigclient` returns a kubeconfig whose user is a client certificate signed by the lab
  CA, CN `palette-<cluster>-client` with no organisation (so not system:masters), which the ClusterRoleBinding
  `palette-<cluster>-client` (labelled `palette.lab/kubeconfig-client=true`, made when the simulator starts and again by `/__lab__/reset` if it
  is missing) binds to cluster-admin; server is the real lab apiserver, certificate-authority-data embedded.
  The certificates are minted once per lab, in `<lab state>/palette-kubeconfigs/`, so the text is stable.
  Lab decision: real Palette hands out its own cluster's credentials; the lab's clusters share one
  apiserver, so each cluster is told apart by the user its kubeconfig carries.
- MAAS cloud account (maas_clusters.py): `lab-maas`, tenant-scoped (every project sees it), points at the
  lab's MAAS simulator with its administrator key (never returned: `spec` has apiEndpoint and
  preferredSubnets only). `GET /v1/cloudaccounts/maas` (listmeta as other lists), `GET .../{uid}`,
  `.../properties/resourcePools|azs|tags|domains` read MAAS live over HTTP (maas_client.py: OAuth 1.0a
  PLAINTEXT, as any MAAS client signs). The lab MAAS serves no `/domains/` yet: the domains are then `maas`
  and those its machines name. A MAAS error is a 502 CloudAccountError.
- MAAS clusters (maas_clusters.py, which names the cluster-api-provider-maas code each step follows):
  `POST /v1/spectroclusters/maas` needs a ProjectUid (400 without), a DNS-label name unique in the project
  (409 SpectroClusterNameExists), the account's uid, `cloudConfig.domain`, exactly one published infra (or
  cluster) profile for maas or all plus published add-ons, and one control-plane pool (size >= 1; workers
  >= 0), each pool of the spec's shape. Any problem is one 400 v1Error naming each pool and field
  (`machine pool 'workers': poolConfig.size: ...`); nothing is written. MAAS is not asked: Palette's client
  and provider check nothing against MAAS before a create, a resource pool, zone or tag MAAS does not know
  and a shortage of Ready machines show on the machines (below), as cluster-api-provider-maas meets them at
  op=allocate. `POST .../maas/validate` (read-only: `mutating` false) runs the same checks and answers 200
  with pool errors in `machinePools.results[{name, displayName, errors[{code, message}]}]` and profile
  errors in `profiles[{uid, packs.results}]`; an unknown account, a missing domain or no pools are a 400
  there too (the response has no place for them: a lab decision). A validate naming a cluster the project
  has is checked as any create body (the spec documents nothing for a taken name: lab decision).
- A created cluster is Pending; its controller thread takes a Palette-side step every
  `maas_cluster_step_seconds` (0.2 s): Provisioning, then each missing machine appears Pending for a step,
  is allocated in MAAS (`op=allocate`: pool, the machine's zone, the pool's LAST tag only as
  maas-client-go's WithTags sends it, cpu_count, mem, agent_name `palette-<cluster>`, comment) and is
  Provisioning, is deployed (swap off with `PUT swap_size=0`, then `op=deploy` with distro_series from the
  OS layer and cloud-init with the SSH keys and NTP servers; the real provider deploys Palette's custom
  image, osystem=custom, the lab stock Ubuntu), Provisioned once MAAS says Deployed (MAAS's own
  durations), then Running with its Node Ready. Each machine gets one zone when it is made (of the pool's
  azs, the one with fewest of the pool's machines, as CAPI spreads failure domains by count) and is
  allocated only there, retried there while MAAS has none (no fallback to another zone). A
  machine that fails to deploy is Failed, kept until a replacement is allocated, then released. The
  cluster is Running once every pool has `size` Ready machines (it stays Running while pools scale);
  `status.conditions` ControlPlaneReady and NodesReady say which machines each pool waits for (and MAAS's
  answer, e.g. no machine matching); the infra packs are Ready=False (Provisioning) until Running, then
  True; add-on profiles given at create (or attached while Provisioning) show Ready=False reason Pending
  and are handed to the agent once Running. A machine MAAS cannot give (409 no machine matches, or 400 for
  an unknown pool, zone or tag) stays Pending with MAAS's answer as its message and in the conditions,
  op=allocate retried every step (CAPMAAS DeployMachine returns the error, the controller requeues): the
  cluster stays Provisioning, or Running and UnHealthy when a running cluster's pool grows short. Overview
  (`GET /v1/dashboard/spectroclusters/{uid}/overview`): status.state, status.health.state Unknown before
  Running, then Healthy when every pool has its size Ready, UnHealthy while a pool is short or scaling;
  spec.cloudConfig.machinePools[] (v1MachinePoolMeta, in the cloud config's pool order: isControlPlane,
  labels, size, healthy = the pool's Running machines, maintenanceMode 0; the spec's v1MachinePoolMeta has
  no name field).
- Nodes: one per machine MAAS deployed, named after its MAAS hostname, labelled kubernetes.io/hostname,
  kubernetes.io/os=linux, kubernetes.io/arch (MAAS's), kubevirt.io/schedulable=true,
  topology.kubernetes.io/zone=<MAAS zone>, node-role.kubernetes.io/control-plane or /worker, the pool's
  additionalLabels, and the lab's palette.lab/cluster-uid and palette.lab/machine-pool; annotated with the
  CAPI machine; spec.providerID `maas:///<zone>/<system id>`; taints: the pool's, plus kubeadm's
  control-plane NoSchedule unless useControlPlaneAsWorker; status Ready, capacity cpu and memory from MAAS.
  A pool's label or taint change reaches its Nodes; placement changes (resource pool, azs, tags, instance
  type) apply to machines allocated from then on (a lab decision: Palette would roll the pool).
- `GET /v1/cloudconfigs/maas/{uid}`: cloudAccountRef, clusterConfig and machinePoolConfig (v1MaasMachinePoolConfig,
  pools being deleted left out). `PUT .../machinePools/{name}` (its shape checked as at create, MAAS not
  asked; isControlPlane cannot change) scales: more machines are allocated, or the newest are released
  and their Nodes deleted. `POST .../machinePools` adds a worker pool (201 {uid}; 409 if the name exists),
  `DELETE` releases a worker pool's machines (the control plane's is a 400). `PUT .../clusterConfig`
  (v1MaasCloudClusterConfigEntity `{clusterConfig: {domain, sshKeys, ntpServers, enableLxdVm, staticIp}}`, 204)
  replaces the cluster config shown in `spec.clusterConfig`; a body without `clusterConfig`, without a domain or
  with fields of the wrong type is a 400 v1Error. Lab decisions: machines already deployed keep the SSH keys and
  NTP servers they were deployed with (nothing is redeployed), machines deployed after it get the new ones, the
  domain is only stored, the cluster's state and health do not change. `GET .../machines`:
  v1MaasMachines with instanceState Pending|Provisioning|Provisioned|Running|Deleting|Failed, ready, health.
- `DELETE /v1/spectroclusters/{uid}` (a MAAS cluster; lab-cluster is a 400): Deleting at once, every
  machine's Node deleted and the machine released; each machine leaves its pool as soon as MAAS accepts
  its release (CAPMAAS reconcileDelete removes the finalizer after op=release), so once every release is
  accepted the cluster's client binding and RBAC bindings are deleted and the cluster is gone (GET 404),
  while MAAS may still be Releasing or Disk erasing the machines. A release MAAS does not accept (MAAS
  down) is sent again every step and the cluster stays Deleting. `forceDelete=true` is accepted only once
  the cluster has been Deleting for `force_delete_after_seconds` (900 s, as docs.spectrocloud.com "Cluster
  Removal" says: eligible after 15 minutes in Deleting); before that, or on a cluster not Deleting, a 400
  v1Error ForceDeleteNotAllowed (the status is a lab decision: no source says which). A forced cluster is
  gone at the next step, its MAAS machines left as MAAS has them, not released (the spec: "user has to
  manually clean up the provisioned cloud resources"); its Nodes and bindings in the shared apiserver are
  deleted (lab decision). A Deleting cluster refuses profile, pool and cluster config changes (409
  SpectroClusterDeleting).
- A MAAS cluster's kubeconfigs exist once its first control-plane machine runs (404 KubeconfigNotFound
  before): kubeconfigclient as for lab-cluster (CN `palette-<cluster>-client`, binding made then),
  adminKubeconfig and kubeconfig a certificate CN `palette-<cluster>-admin`, O system:masters.
  `PUT config/rbacs` on a MAAS cluster names its bindings `spectro-on-demand-<n>-<cluster>` (one apiserver
  is shared). Search and overview list every cluster of the scope with its state and health.
- The simulator keeps no clusters across a restart: the MAAS machines it held (the ledger
  `<lab state>/palette-maas-machines.json`) are released and its Nodes and MAAS clusters' bindings deleted
  when it starts.
- `PUT config/rbacs` replaces the cluster's bindings and makes them before answering 204:
  `spectro-on-demand-<n>` (n counts the bindings of the body in order) labelled
  `spectrocloud.com/clusterRbac=true` and `spectrocloud.com/clusterId=<uid>`; bindings no longer listed
  are deleted.
- Every API request is one JSON line in the request log: time, method, path, query, project, status,
  `mutating` (POST/PUT/PATCH/DELETE except the read-only list and search POSTs) and any injected fault.

Lab endpoints (no ApiKey, never logged, never called by the collection):

- `GET /__lab__/health`, `GET /__lab__/info` (cluster, registry, project, pack and infra profile uids;
  `cluster_client_user` and `cluster_client_binding`: lab-cluster's client identity and its binding;
  `maas_account`, `maas_account_uid`, `maas_cluster_step_seconds`, `force_delete_after_seconds`, and
  `maas_clusters` by name:
  uid, project, cloud_config_uid, state, client_user, admin_user).
- `PUT /__lab__/faults` with any of: `http_429` (next n requests get 429, with `retry_after` seconds
  in a Retry-After header unless `retry_after_header` is false), `http_5xx` (next n get `status_5xx`,
  default 503), `drop_connections` (next n are cut), `lose_write_answers` (next n writes take effect,
  then are cut before their answer), `refuse_writes` (next n writes are refused with `refuse_status`,
  default 500, and not carried out), `slow_seconds` (every request waits first), `rate_limit` (false
  turns Palette's limits off), `deploy_seconds`, `apply_delay_seconds`, `duplicate_profile_status`
  (409, 400 or 500), `nodes_not_ready_seconds` (NodesReady False for that long from now),
  `maas_cluster_step_seconds` (a MAAS cluster's Palette-side step), `force_delete_after_seconds` (how long
  a MAAS cluster must have been Deleting before forceDelete is accepted; 900 as Palette). The answer
  lists every knob; `/__lab__/reset` puts them back.
- `POST /__lab__/seed` `{count, prefix, project (name, "" for tenant), version}`: published add-on profiles.
- `POST /__lab__/reset`: every MAAS cluster deleted (machines released, Nodes and bindings gone, waited
  for), then faults, limits, profiles, attachments and RBAC as in a fresh lab, then the baseline below.
- `POST /__lab__/baseline`: every MAAS cluster deleted and waited for; the KubeVirt and CDI CRs as
  tests/lab/bootstrap.py made them, and the namespaces, manifest objects and bindings the agent created
  deleted (the VMO ClusterRoles stay).
"""
