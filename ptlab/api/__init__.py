"""The ptlab.io/v1alpha1 API: spec models shared by the CLI, local executor and operator."""

from ptlab.api.models import (
    API_VERSION,
    GROUP,
    KINDS,
    VERSION,
    ComparisonStudy,
    ComparisonStudySpec,
    PostTrainingRun,
    PostTrainingRunSpec,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "VERSION",
    "ComparisonStudy",
    "ComparisonStudySpec",
    "PostTrainingRun",
    "PostTrainingRunSpec",
]
