# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # A Palette cluster, by name, in place of the Kubernetes connection options (with palette_auth).
    DOCUMENTATION = r"""
options:
  palette_cluster:
    description:
      - Name or uid of a Palette cluster to work on, instead of a kubeconfig. The cluster is looked up in
        O(palette_project) (tenant scope without it) with the C(palette_*) connection options, and its kubeconfig is
        read from Palette (C(GET /v1/spectroclusters/{uid}/assets/kubeconfigclient), or C(adminKubeconfig) with
        O(palette_kubeconfig_kind=admin)).
      - The kubeconfig is kept in memory only. It is never written to a file, not even a temporary one (its client
        certificate and key reach the TLS library through anonymous in-memory files), and never appears in results
        or logs.
      - Exactly one way to the cluster. With O(palette_cluster), none of the Kubernetes connection options (O(kubeconfig),
        O(context), O(host), O(api_key), O(username), O(password), O(client_cert), O(client_key), O(ca_cert),
        O(validate_certs), O(proxy), O(impersonate_user), O(impersonate_groups)) may be given in the task or inventory source; that is an
        input error before any request. Their E(K8S_AUTH_*) variables and E(KUBECONFIG) are not read.
      - TLS to the cluster is always verified, against the kubeconfig's C(certificate-authority-data) (the system's
        trusted CAs when it has none); its C(insecure-skip-tls-verify) is not honoured.
      - The kubeconfig must carry its credentials (a token, a client certificate with its key, or a user name and
        password); one that runs an exec or auth-provider plugin (an OIDC login) or names files is refused, and
        O(palette_kubeconfig_kind=admin) is the way to such a cluster.
    type: str
  palette_kubeconfig_kind:
    description:
      - Which of the cluster's kubeconfigs to use with O(palette_cluster).
      - V(client) is the one Palette hands to cluster users (C(/assets/kubeconfigclient)); V(admin) the cluster's
        admin kubeconfig (C(/assets/adminKubeconfig)), which needs a Palette role that may read it.
    type: str
    choices: [client, admin]
    default: client
"""
