"""The KubeVirt stand-in: KubeVirt's real API (generated CRDs) with a small Python runtime behind it."""
