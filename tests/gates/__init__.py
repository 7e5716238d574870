"""The collection's quality gates: ansible-test sanity, generated docs (run by `make test`)."""
