// Apollo Gateway (federation 2, IntrospectAndCompose) over the subgraphs named in SUBGRAPHS, for bench/peer.py.
//   PORT=4000 SUBGRAPHS='[{"name":"public_security","url":"http://127.0.0.1:4001/graphql"}, ...]' node gateway.mjs
// Listens on 127.0.0.1 only. Default Apollo settings otherwise (query-plan cache, subgraph fetcher).
import { ApolloServer } from "@apollo/server";
import { startStandaloneServer } from "@apollo/server/standalone";
import { ApolloGateway, IntrospectAndCompose } from "@apollo/gateway";

const port = Number(process.env.PORT || 4000);
const subgraphs = JSON.parse(process.env.SUBGRAPHS || "[]");
if (!subgraphs.length) {
  console.error("SUBGRAPHS is empty");
  process.exit(2);
}

const gateway = new ApolloGateway({ supergraphSdl: new IntrospectAndCompose({ subgraphs }) });
const server = new ApolloServer({ gateway, introspection: false });
const { url } = await startStandaloneServer(server, { listen: { host: "127.0.0.1", port } });
console.log(`apollo gateway ready at ${url} over ${subgraphs.map((s) => s.name).join(", ")}`);

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, async () => {
    await server.stop();
    process.exit(0);
  });
}
