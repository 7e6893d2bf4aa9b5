// The hub's GraphiQL start-up (hub/graphiql.py). Settings come from the page's JSON block; nothing is sent to
// /graphql until the Authorization header holds a token, so opening the page writes no denied audit entry.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("hub-graphiql").textContent);
  var send = GraphiQL.createFetcher({ url: config.url });
  var JWT = /^Bearer\s+[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

  function authorization(headers) {
    if (!headers) return "";
    for (var name in headers) {
      if (name.toLowerCase() === "authorization") return String(headers[name]).trim();
    }
    return "";
  }

  function fetcher(params, options) {
    if (!JWT.test(authorization(options && options.headers))) {
      return Promise.resolve({ errors: [{ message: config.noToken }] });
    }
    return send(params, options);
  }

  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: config.query,
      defaultHeaders: config.headers,
      defaultEditorToolsVisibility: "headers",
      shouldPersistHeaders: false,
    })
  );
})();
