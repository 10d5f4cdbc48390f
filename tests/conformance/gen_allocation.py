"""Regenerates allocation.json. Expected buckets come from the PyPI package `mmh3`, an implementation
independent of tailor's, following the spec in the README:
bucket = murmur3_x86_32("<salt>.<draw>:<unit>:<visitor>", seed 0) mod 10000."""
import json
import mmh3

SALT = "lang"

def bucket(draw, unit, visitor):
    return mmh3.hash(f"{SALT}.{draw}:{unit}:{visitor}".encode(), 0, signed=False) % 10000

cases = []
for i in range(12):
    v = f"visitor-{i}"
    b_var = bucket("variant", "ab-test", v)
    b_traffic = bucket("traffic", "partial-traffic", v)
    b_hold = bucket("holdout", "half", v)
    owner = bucket("exclusion", "g", v) * 2 // 10000
    cases.append({
        "name": f"draws for {v}",
        "now": "2026-12-07T10:00:00Z",
        "request": {"visitor_id": v},
        "expect": {
            "ab": {"experience": "ab-test", "variant": "a" if b_var < 2500 else "b", "content": {"arm": "a" if b_var < 2500 else "b"}},
            "partial": "partial-traffic" if b_traffic < 2500 else None,
            "held": {"reason": "holdout"} if b_hold < 5000 else "held-exp",
            "group_a": "group-a-exp" if owner == 0 else None,
            "group_b": "group-b-exp" if owner == 1 else None,
        },
    })
cases += [
    {"name": "schedule: one second before Seoul midnight on Dec 1", "now": "2026-11-30T14:59:59Z", "request": {"visitor_id": "v1"}, "expect": {"scheduled": None}},
    {"name": "schedule: starts at Seoul midnight (inclusive)", "now": "2026-11-30T15:00:00Z", "request": {"visitor_id": "v1"}, "expect": {"scheduled": "december-seoul"}},
    {"name": "schedule: ends at Seoul midnight on Jan 1 (exclusive)", "now": "2026-12-31T15:00:00Z", "request": {"visitor_id": "v1"}, "expect": {"scheduled": None}},
    {"name": "frequency cap reached", "now": "2026-12-07T10:00:00Z", "request": {"visitor_id": "v1"}, "profile": {"exposures": {"capped-promo": 3}}, "expect": {"capped": None}},
    {"name": "frequency cap not reached", "now": "2026-12-07T10:00:00Z", "request": {"visitor_id": "v1"}, "profile": {"exposures": {"capped-promo": 2}}, "expect": {"capped": "capped-promo"}},
    {"name": "without a visitor id only experiences marked requires_visitor_id = false match", "now": "2026-12-07T10:00:00Z",
     "request": {"context": {"geo": {"country": "KR"}}}, "expect": {"anonymous": "anon-ok", "ab": None, "held": None, "priority": None}},
    {"name": "priority wins over file order, file order breaks ties", "now": "2026-12-07T10:00:00Z", "request": {"visitor_id": "v1"},
     "expect": {"priority": {"experience": "high-second-in-file", "content": {"who": "high"}}}},
    {"name": "with consent the profile-based experience wins", "now": "2026-12-07T10:00:00Z",
     "request": {"visitor_id": "v1", "context": {"geo": {"country": "KR"}}}, "profile": {"traits": {"tier": "gold"}}, "expect": {"personal": "personal-gold"}},
    {"name": "consent denied in the request: only context-only experiences can match", "now": "2026-12-07T10:00:00Z",
     "request": {"visitor_id": "v1", "consent": {"personalization": False}, "context": {"geo": {"country": "KR"}}}, "profile": {"traits": {"tier": "gold"}},
     "expect": {"personal": "context-only"}},
    {"name": "consent denied in the profile", "now": "2026-12-07T10:00:00Z",
     "request": {"visitor_id": "v1", "context": {"geo": {"country": "KR"}}}, "profile": {"traits": {"tier": "gold"}, "consent": {"personalization": False}},
     "expect": {"personal": "context-only"}},
    {"name": "an unknown placement answers null content, the others still decide", "now": "2026-12-07T10:00:00Z", "request": {"visitor_id": "v1"},
     "expect": {"nope": {"reason": "unknown_placement", "content": None}, "priority": "high-second-in-file"}},
]
doc = {"description": "Allocation, holdouts, exclusion groups, schedules, caps, visitor ids, priority and consent on tests/bundles/lang. Buckets computed with mmh3 by gen_allocation.py.",
       "bundle": "tests/bundles/lang", "cases": cases}
with open("allocation.json", "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
