"""S3 clients for the tests.

The tests share one botocore session (tests/conftest.py), and each boto3
session made on it registers boto3's S3 methods again: the second S3 client
class built on it then fails ("Cannot inject class attribute"). An S3 client
of its own botocore session has no boto3 handlers; moto serves it all the same.
"""

from __future__ import annotations

from typing import Any

import botocore.session


def s3_client(region: str = "us-east-1") -> Any:
    return botocore.session.Session().create_client("s3", region_name=region)
