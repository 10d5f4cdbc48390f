"""Write N profile snapshots as JSON lines (visitor ids v0..v{N-1}) for `tailor import`.

Each is rules/retail/examples/big-spender.profile.json with its purchases shifted by a per-visitor number
of days and cut to PURCHASES events, so profiles differ but keep the example's shape.
"""
import json
import sys
from datetime import datetime, timedelta

n = int(sys.argv[1])
purchases = int(sys.argv[2]) if len(sys.argv) > 2 else 30
base = json.load(open("rules/retail/examples/big-spender.profile.json"))
events = base["events"]["purchases"][:purchases]
out = sys.stdout
for i in range(n):
    shift = timedelta(days=i % 97)
    p = dict(base)
    p["visitor_id"] = f"v{i}"
    p["events"] = {
        "purchases": [
            dict(e, at=(datetime.fromisoformat(e["at"].replace("Z", "+00:00")) - shift).strftime("%Y-%m-%dT%H:%M:%SZ"))
            for e in events
        ]
    }
    out.write(json.dumps(p, separators=(",", ":")))
    out.write("\n")
