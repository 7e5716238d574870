# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The Kubernetes connection options, named as in kubernetes.core.
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig itself as a dictionary.
      - Without it (and without O(host) plus credentials) the module reads E(K8S_AUTH_KUBECONFIG), then the first
        file in E(KUBECONFIG), then C(~/.kube/config), then the in-cluster service account.
    type: raw
  context:
    description: The kubeconfig context to use; defaults to the kubeconfig's current context. E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description: URL of the Kubernetes API server; overrides the kubeconfig's server. E(K8S_AUTH_HOST).
    type: str
  api_key:
    description: Bearer token for the API server. E(K8S_AUTH_API_KEY).
    type: str
  username:
    description: User name for basic authentication. E(K8S_AUTH_USERNAME).
    type: str
  password:
    description: Password for basic authentication. E(K8S_AUTH_PASSWORD).
    type: str
  client_cert:
    description: Path to a client certificate. E(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description: Path to the client certificate's key. E(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
  ca_cert:
    description: Path to the CA certificate that signed the API server's certificate. E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. E(K8S_AUTH_VERIFY_SSL).
      - Unset means the kubeconfig decides, which verifies unless it says C(insecure-skip-tls-verify).
    type: bool
    aliases: [verify_ssl]
  proxy:
    description: HTTP proxy URL for the API server connection. E(K8S_AUTH_PROXY).
    type: str
  impersonate_user:
    description: User name to impersonate. E(K8S_AUTH_IMPERSONATE_USER).
    type: str
  impersonate_groups:
    description: Groups to impersonate. E(K8S_AUTH_IMPERSONATE_GROUPS).
    type: list
    elements: str
requirements:
  - kubernetes >= 28.1.0 (for reading kubeconfig files)
notes:
  - TLS is verified by default.
  - The API key, password and kubeconfig contents are never returned or logged.
"""
