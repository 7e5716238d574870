"""The local lab: a real Kubernetes control plane, KubeVirt's real CRDs and a KubeVirt stand-in."""
