# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options of every MAAS module and plugin.
    DOCUMENTATION = r"""
options:
  maas_url:
    description:
      - URL of the MAAS region, up to and including C(/MAAS) (for example C(https://maas.example.com:5443/MAAS)).
      - E(MAAS_URL) when unset.
    type: str
    aliases: [url]
  maas_api_key:
    description:
      - MAAS API key, C(consumer_key:token_key:token_secret) as C(maas apikey) prints it. Requests are signed with
        OAuth 1.0a PLAINTEXT. E(MAAS_API_KEY) when unset.
    type: str
    aliases: [api_key]
  maas_ca_cert:
    description: CA certificate that signed the MAAS certificate. E(MAAS_CA_CERT) when unset.
    type: path
    aliases: [ca_cert]
  validate_certs:
    description: Verify the MAAS TLS certificate. Only turn this off for a throwaway lab.
    type: bool
    default: true
  maas_timeout:
    description: Seconds to wait for one MAAS response.
    type: int
    default: 30
notes:
  - Busy-region answers (HTTP 503, 502, 504, 429) and dropped connections are retried with jittered backoff.
  - The API key is never logged or returned.
"""
