"""Everything the dashboard and the command line use: settings, data access, statistics, the API client,
and the local stack."""
