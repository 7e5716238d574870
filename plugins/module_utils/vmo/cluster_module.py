# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module of every task that talks to a cluster's Kubernetes API: kubernetes.core's connection options,
or a Palette cluster reached by name (its kubeconfig fetched into memory), written once for all of them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.palette.vmo.plugins.module_utils.kube.auth import AUTH_ARG_SPEC, KubeModule
from ansible_collections.palette.vmo.plugins.module_utils.palette.cluster_access import (
    PALETTE_CLUSTER_ARG_SPEC, PaletteClusterSource)


def cluster_argument_spec(*option_sets):
    """The connection options, then the module's own option sets in order. Each backend keeps its own TLS
    options: validate_certs is the Kubernetes one, palette_validate_certs Palette's."""
    spec = dict(AUTH_ARG_SPEC)
    spec.update(PALETTE_CLUSTER_ARG_SPEC)
    for options in option_sets:
        spec.update(options)
    return spec


def cluster_module(argument_spec, **kwargs):
    """A KubeModule that reaches the cluster through the connection options or `palette_cluster`."""
    return KubeModule(argument_spec=argument_spec, kubeconfig_source=PaletteClusterSource(), **kwargs)
