"""A stand-in for Velero's server (v1.17.1) with the kubevirt-velero-plugin's item actions: see server.py."""
