"""The workspace on disk: files, lock, commit journal, ledger, landing,
quarantine, retention, manifest, history."""
