# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""AnsibleModule for options that carry secrets inside structured values.

`no_log` hides an option's whole value; a kubeconfig dict or a list of machines with BMC passwords holds
secrets among words (context names, host names) that masking would blank out of every result. Such a module
names the secrets it finds in its parameters, and they are no_log from the moment the parameters are read,
so even a failure of the argument validation itself (whose result carries the invocation) never shows them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule


class NestedSecretsModule(AnsibleModule):
    """Subclasses set `nested_secrets(params)` to the set of secret strings inside the parameters."""

    @staticmethod
    def nested_secrets(params):
        return set()

    def _load_params(self):
        super(NestedSecretsModule, self)._load_params()
        self.no_log_values.update(self.nested_secrets(self.params))
