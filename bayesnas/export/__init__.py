"""Export: a candidate as a standalone, physically smaller sub-network (``candidate``), its
deployable ONNX / TorchScript files (``deploy``), and ensembles of candidates (``ensemble``)."""

from bayesnas.export.candidate import (
    ARCHITECTURE,
    METRICS,
    WEIGHTS,
    ExportedModel,
    export_candidate,
    load_exported,
    read_export,
    write_trained,
)
from bayesnas.export.deploy import DEPLOY_FILES, export_deployable

__all__ = [
    "ARCHITECTURE",
    "DEPLOY_FILES",
    "METRICS",
    "WEIGHTS",
    "ExportedModel",
    "export_candidate",
    "export_deployable",
    "load_exported",
    "read_export",
    "write_trained",
]
