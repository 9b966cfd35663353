"""Talking to Apache Superset (6.1 and 4.1) and reading its export bundles. No Django here."""

from migrator.superset.bundle import BundleDatabase, BundleInfo, inspect_bundle
from migrator.superset.client import SupersetClient
from migrator.superset.errors import (
    AuthenticationFailed,
    ConnectionTestFailed,
    CSRFRejected,
    ImportRejected,
    InvalidBundle,
    NotASuperset,
    SupersetAPIError,
    SupersetError,
    SupersetTLSError,
    SupersetUnreachable,
)
from migrator.superset.problems import ImportProblems, InputNeed, parse_import_error

__all__ = [
    "AuthenticationFailed",
    "BundleDatabase",
    "BundleInfo",
    "CSRFRejected",
    "ConnectionTestFailed",
    "ImportProblems",
    "ImportRejected",
    "InputNeed",
    "InvalidBundle",
    "NotASuperset",
    "SupersetAPIError",
    "SupersetClient",
    "SupersetError",
    "SupersetTLSError",
    "SupersetUnreachable",
    "inspect_bundle",
    "parse_import_error",
]
