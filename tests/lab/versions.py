"""Every version the lab runs, pinned in this one place.

The Go programs are built from the Go module proxy at exactly these versions; the build
cache is keyed by them, so changing a pin here rebuilds only what it names.
"""

KUBERNETES = "v1.36.3"
# The etcd release that Kubernetes 1.36 itself pins in its go.mod.
ETCD = "v3.6.8"
KUBEVIRT = "v1.9.0"
CDI = "v1.65.0"
# The Multus project's NetworkAttachmentDefinition CRD (the VMO pack bundles Multus), as that module ships it.
NETWORK_ATTACHMENT_DEFINITION = "v1.7.7"
# The external-snapshotter's VolumeSnapshot CRDs (the VMO pack bundles a snapshot controller), as its client
# module ships them.
EXTERNAL_SNAPSHOTTER = "v8.4.0"
# Velero, whose CRDs the lab registers from the files its module ships (Palette's cluster backup is Velero).
VELERO = "v1.17.1"

# The Go toolchain the wrapper modules declare (Kubernetes 1.36 needs go >= 1.26.0).
GO_DIRECTIVE = "1.26.0"
