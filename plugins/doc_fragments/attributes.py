# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # What check_mode and diff_mode mean; each module adds its own support and details.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Can run in check mode and predict C(changed) without modifying anything.
  diff_mode:
    description: Returns the before and after of what it changes (or would change in check mode) in diff mode.
"""
