#!/usr/bin/env python3
"""Uploads FILE to a tus endpoint with tuspy (PyPI `tuspy`, pinned in
scripts/install-deps.sh) in 1 MiB chunks, with KEY=VALUE metadata, and prints the upload's
URL. Used by Tests/FerryIntegrationTests/TusTests.swift."""
import sys

from tusclient import client

url, path, *pairs = sys.argv[1:]
metadata = dict(pair.split("=", 1) for pair in pairs)
uploader = client.TusClient(url).uploader(path, chunk_size=1 << 20, metadata=metadata)
uploader.upload()
print(uploader.url)
