#!/usr/bin/env python3
"""Cuts the operations Headroom calls out of Stripe's official OpenAPI document.

The test-side Stripe server (server/tests/common/stripe.rs) checks every request
Headroom sends against this subset: the request-body schemas and the response
objects' required fields, copied verbatim from the source document.

Source: GitHub stripe/openapi, openapi/spec3.json at commit
b89252df78636b22a3ad03f31ad7599b478f7316 (API 2024-04-10), MIT licence,
sha256 397af5b79e00011df5ef88104bd71133002c2c691b37586e53de3e928bf36b8a.

    python3 scripts/stripe/extract_spec.py ../shared/stripe-openapi/spec3.json \
        > server/tests/data/stripe-openapi-subset.json
"""
import hashlib
import json
import sys

OPERATIONS = [
    ("/v1/billing/meter_events", "post"),
    ("/v1/billing/meters", "get"),
    ("/v1/billing/meters", "post"),
    ("/v1/customers", "post"),
    ("/v1/prices", "post"),
    ("/v1/products", "post"),
    ("/v1/subscriptions", "post"),
]
SCHEMAS = ["billing.meter_event", "billing.meter", "customer", "price", "product", "subscription"]

raw = open(sys.argv[1], "rb").read()
spec = json.loads(raw)
out = {
    "source": {
        "repository": "https://github.com/stripe/openapi",
        "path": "openapi/spec3.json",
        "sha256": hashlib.sha256(raw).hexdigest(),
        "api_version": spec["info"]["version"],
        "license": "MIT, Copyright (c) 2011- Stripe, Inc.",
    },
    "paths": {},
    "schemas": {},
}
for path, method in OPERATIONS:
    op = spec["paths"][path][method]
    if method == "get":
        # Query parameters, as one object schema (Stripe encodes them like forms).
        request = {
            "properties": {p["name"]: p["schema"] for p in op.get("parameters", []) if p["in"] == "query"},
            "required": [p["name"] for p in op.get("parameters", []) if p["in"] == "query" and p.get("required")],
        }
    else:
        request = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    out["paths"].setdefault(path, {})[method] = {
        "requestBody": request,
        "response": op["responses"]["200"]["content"]["application/json"]["schema"],
    }
for name in SCHEMAS:
    s = spec["components"]["schemas"][name]
    out["schemas"][name] = {"required": s["required"], "properties": sorted(s["properties"])}
json.dump(out, sys.stdout, indent=1, sort_keys=True)
sys.stdout.write("\n")
