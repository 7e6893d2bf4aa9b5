// Hop tokens for the bench's peer gateways (Apollo, Hive): what the hub's HopSigner (hub/auth/hop.py) mints for
// every POST to a department subgraph. Since issue #18 a hop token is bound to the exact request (req_sha256:
// SHA-256 of the canonical JSON of its query and variables) and accepted once, so a gateway must mint one per
// subgraph request, as the hub does: the comparison is then like for like (the same subgraphs, the same checks).
//
//   HOP_KEY_PEM  the hub's active token key (PKCS#8 PEM, P-256), HOP_KID its kid, HOP_ISSUER the hub's issuer,
//   HOP_ACT      JSON {client_id, department, officer, area, purpose, case}: who the bench's requests act for.
import { createHash, createPrivateKey, randomBytes, sign } from "node:crypto";
import { readFileSync } from "node:fs";

const key = createPrivateKey(readFileSync(process.env.HOP_KEY_PEM));
const issuer = process.env.HOP_ISSUER;
const { purpose, case: caseRef, ...act } = JSON.parse(process.env.HOP_ACT);
const b64 = (data) => Buffer.from(data).toString("base64url");
const header = b64(JSON.stringify({ typ: "at+jwt", alg: "ES256", kid: process.env.HOP_KID }));

// json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False), as hub.auth.hop.request_digest
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

export function hopToken(audience, query, variables) {
  const now = Math.floor(Date.now() / 1000);
  const digest = createHash("sha256").update(canonical({ query: query || "", variables: variables || {} })).digest("hex");
  const claims = {
    iss: issuer, aud: audience, sub: "hub", client_id: "hub", iat: now, nbf: now, exp: now + 15,
    jti: b64(randomBytes(16)), req_sha256: digest, act, purpose, case: caseRef, request_id: randomBytes(16).toString("hex"),
  };
  const input = `${header}.${b64(JSON.stringify(claims))}`;
  return `${input}.${b64(sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" }))}`;
}
