"""What every Tollgate service shares: settings, logging, auth, errors, DB helpers."""
