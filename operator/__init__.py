"""ptlab.operator: kopf operator for PostTrainingRun and ComparisonStudy."""
