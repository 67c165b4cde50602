"""The cold tier: every pinned DAG archived as a CAR, with its block index and piece commitment.

Pure byte-level code: nothing here knows S3, DynamoDB or HTTP.
"""
