"""Planner tests: the policy is real YAML through the real loader; devices, scans and the job
ledger are plain values; the clock is a parameter. Nothing is faked."""
