// Apollo Gateway (federation 2) over the department subgraphs named in SUBGRAPHS, for bench/peer.py.
//
//   PORT=4000 SUBGRAPHS='[{"name":"public_security","url":"http://127.0.0.1:4001/graphql"}, ...]' node gateway.mjs
//
// The department subgraphs (hub.demo.subgraph) have no root field that returns a Person: they answer only
// `_entities`, the way the hub uses them. So the supergraph gets one more, in-process subgraph ("entry", a
// LocalGraphQLDataSource: no HTTP hop) with `Query.person(idNumber): Person` that returns the key alone;
// Apollo then fetches each department's fields with `_entities`, as the hub does.
//
// Composition happens here at start (@apollo/composition) from each subgraph's `_service { sdl }`. Both
// department subgraphs declare the same informational root field `Query.department`; for composition only,
// it is kept in the first subgraph that has it (it is never queried).
//
// The department subgraphs require the hub's hop token (aud = department, bound to the exact request, used once)
// on `_entities`: the gateway mints one per subgraph request with the hub's key (hop.mjs), as the hub does.
// Listens on 127.0.0.1 only. Apollo's anonymous telemetry is disabled before the gateway is constructed.
process.env.APOLLO_TELEMETRY_DISABLED = "true";

import { composeServices } from "@apollo/composition";
import { ApolloGateway, LocalGraphQLDataSource, RemoteGraphQLDataSource } from "@apollo/gateway";
import { ApolloServer } from "@apollo/server";
import { startStandaloneServer } from "@apollo/server/standalone";
import { buildSubgraphSchema } from "@apollo/subgraph";
import { parse } from "graphql";

import { hopToken } from "./hop.mjs";

const port = Number(process.env.PORT || 4000);
const subgraphs = JSON.parse(process.env.SUBGRAPHS || "[]");
if (!subgraphs.length) {
  console.error("SUBGRAPHS is empty");
  process.exit(2);
}

const ENTRY_SDL = `
extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])
type Person @key(fields: "idNumber", resolvable: false) { idNumber: String! }
type Query { person(idNumber: String!): Person }
`;
const entrySchema = buildSubgraphSchema({
  typeDefs: parse(ENTRY_SDL),
  resolvers: { Query: { person: (_root, { idNumber }) => ({ idNumber }) } },
});

async function sdlOf(url) {
  const r = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: "query { _service { sdl } }" }),
  });
  const body = await r.json();
  if (!body.data?._service?.sdl) throw new Error(`${url}: no _service.sdl: ${JSON.stringify(body).slice(0, 300)}`);
  return body.data._service.sdl;
}

const services = [{ name: "entry", url: "http://entry.local/graphql", typeDefs: parse(ENTRY_SDL) }];
let departmentSeen = false;
for (const { name, url } of subgraphs) {
  let sdl = await sdlOf(url);
  if (/^\s*department: String!$/m.test(sdl)) {
    if (departmentSeen) sdl = sdl.replace(/^\s*"""The department this subgraph serves\."""\n?/m, "").replace(/^\s*department: String!\n/m, "");
    departmentSeen = true;
  }
  services.push({ name, url, typeDefs: parse(sdl) });
}
const composed = composeServices(services);
if (composed.errors?.length) {
  console.error("composition failed:\n" + composed.errors.map((e) => e.message).join("\n"));
  process.exit(3);
}

const gateway = new ApolloGateway({
  supergraphSdl: composed.supergraphSdl,
  buildService({ name, url }) {
    if (name === "entry") return new LocalGraphQLDataSource(entrySchema);
    return new RemoteGraphQLDataSource({
      url,
      willSendRequest({ request }) {
        request.http.headers.set("authorization", `Bearer ${hopToken(name, request.query, request.variables)}`);
      },
    });
  },
});
const server = new ApolloServer({ gateway, introspection: false });
const { url } = await startStandaloneServer(server, {
  listen: { host: "127.0.0.1", port },
  context: async ({ req }) => ({ headers: req.headers }),
});
console.log(`apollo gateway ready at ${url} over entry (local), ${subgraphs.map((s) => s.name).join(", ")}`);

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, async () => {
    await server.stop();
    process.exit(0);
  });
}
