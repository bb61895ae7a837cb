#!/usr/bin/env python3
"""Independent reader for the archive: prints one JSON line per Avro record under a directory.

Uses python3-avro (not our code), so a test comparing its output to the fixtures proves the files are
readable by others. data is base64 so bytes compare exactly."""
import base64, datetime, json, os, sys
from avro.datafile import DataFileReader
from avro.io import DatumReader

root = sys.argv[1]
for dirpath, _, files in sorted(os.walk(root)):
    for name in sorted(files):
        if not name.endswith(".avro"):
            continue
        path = os.path.join(dirpath, name)
        with open(path, "rb") as f:
            reader = DataFileReader(f, DatumReader())
            codec = reader.meta.get("avro.codec", b"null").decode()
            for rec in reader:
                pt = rec["publish_time"]
                if isinstance(pt, datetime.datetime):
                    pt = int((pt - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)).total_seconds() * 1_000_000)
                print(json.dumps({
                    "file": os.path.relpath(path, root),
                    "codec": codec,
                    "subscription_name": rec["subscription_name"],
                    "message_id": rec["message_id"],
                    "publish_time": pt,
                    "attributes": rec["attributes"],
                    "data": base64.b64encode(rec["data"]).decode(),
                }))
            reader.close()
