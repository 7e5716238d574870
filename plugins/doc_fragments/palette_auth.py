# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options of every module that talks to the Palette REST API.
    DOCUMENTATION = r"""
options:
  palette_host:
    description:
      - Palette API endpoint, such as C(https://api.spectrocloud.com) or a self-hosted Palette's address; C(https://)
        is assumed when no scheme is given.
      - E(PALETTE_HOST) when unset.
    type: str
  palette_api_key:
    description:
      - Palette API key (Profile > My API Keys), sent in the C(ApiKey) header. E(PALETTE_API_KEY) when unset.
    type: str
  palette_project:
    description:
      - Project, by name or uid, that project-scoped calls run in (sent as the C(ProjectUid) header).
      - Omit it for tenant scope. E(PALETTE_PROJECT) when unset.
    type: str
  palette_ca_cert:
    description: CA certificate that signed the Palette certificate (a self-hosted Palette). E(PALETTE_CA_CERT) when unset.
    type: path
  palette_validate_certs:
    description:
      - Verify the Palette TLS certificate. Only turn this off for a throwaway lab. E(PALETTE_VALIDATE_CERTS) when unset.
      - Palette's own switch; the Kubernetes O(validate_certs) and E(K8S_AUTH_VERIFY_SSL) never change it.
    type: bool
    default: true
  palette_timeout:
    description: Seconds to wait for one Palette response.
    type: int
    default: 30
notes:
  - Rate limits (HTTP 429, honouring C(Retry-After)), server errors (HTTP 5xx) and dropped connections are retried
    with jittered backoff. Lists are read page by page (Palette returns at most 50 items per page).
  - The API key is never logged or returned.
"""
