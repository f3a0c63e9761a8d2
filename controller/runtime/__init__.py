"""The service runtime: settings, the reconcile loop, clock and logging."""
