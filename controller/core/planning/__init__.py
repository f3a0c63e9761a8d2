"""The planner's parts, one concern per module; `controller.core.plan` composes them.

`values` (what a plan says), `ledger` (the job ledger indexed once), `policysets` (the policy
objects per device facts and their decisions), `scans`, `installs`, `scripts` (the jobs of one
device), `alerts` (per-device and fleet-level alerts), `devices` (one device's plan as a value),
`fleet` (the pass-wide facts and the assembly of device plans into a `Plan`). Purely
computational, no side effects.
"""
