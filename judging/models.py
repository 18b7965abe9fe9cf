"""Judge configurations, runs and judgements."""
