// Hive Gateway (federation 2, @graphql-hive/gateway-runtime) over the department subgraphs named in SUBGRAPHS,
// for bench/peer.py. The same supergraph as bench/apollo/gateway.mjs:
//
//   PORT=4000 SUBGRAPHS='[{"name":"public_security","url":"http://127.0.0.1:4001/graphql"}, ...]' node gateway.mjs
//
// The department subgraphs (hub.demo.subgraph) answer only `_entities`, so the supergraph gets an "entry" subgraph
// with `Query.person(idNumber): Person` returning the key alone; as with Apollo's LocalGraphQLDataSource it is
// executed in process (a transport of kind "local": no HTTP hop), and the departments' fields are fetched with
// `_entities` over HTTP (@graphql-mesh/transport-http), as the hub does. Composition happens here at start
// (@apollo/composition, the same as for Apollo) from each subgraph's `_service { sdl }`.
//
// The department subgraphs require the hub's hop token (aud = department, bound to the exact request, used once) on
// `_entities`: the gateway mints one per subgraph request with the hub's key (hop.mjs, copied from bench/apollo),
// as the hub does. Listens on 127.0.0.1 only;
// no GraphiQL, no landing page, Hive's usage reporting is not configured (nothing leaves the machine).
import { createServer } from "node:http";

import { composeServices } from "@apollo/composition";
import { buildSubgraphSchema } from "@apollo/subgraph";
import { createGatewayRuntime } from "@graphql-hive/gateway-runtime";
import { createDefaultExecutor } from "@graphql-tools/delegate";
import httpTransport from "@graphql-mesh/transport-http";
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

const entryExecutor = createDefaultExecutor(entrySchema);
const gateway = createGatewayRuntime({
  supergraph: composed.supergraphSdl,
  transports: {
    http: httpTransport,
    local: { getSubgraphExecutor: () => entryExecutor },
  },
  transportEntries: { entry: { kind: "local" } },
  plugins: () => [
    {
      // a hop token per subgraph request, bound to its query and variables (hop.mjs), as the hub mints them
      onFetch({ options, setOptions, url }) {
        const name = subgraphs.find((s) => url === s.url)?.name;
        if (!name || typeof options.body !== "string") return;
        const { query, variables } = JSON.parse(options.body);
        const headers = { ...options.headers, authorization: `Bearer ${hopToken(name, query, variables)}` };
        setOptions({ ...options, headers });
      },
    },
  ],
  graphiql: false,
  landingPage: false,
  logging: "error",
});

const server = createServer(gateway);
server.listen(port, "127.0.0.1", () => {
  console.log(`hive gateway ready at http://127.0.0.1:${port}/graphql over entry (local), ${subgraphs.map((s) => s.name).join(", ")}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, async () => {
    server.close();
    await gateway.dispose?.();
    process.exit(0);
  });
}
