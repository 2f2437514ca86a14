// GraphiQL signed in as the merchant in sandbox mode: the page carries a sandbox token.
window.addEventListener("load", () => {
  const element = document.getElementById("graphiql");
  const headers = { Authorization: `Bearer ${element.dataset.token}` };
  const fetcher = window.GraphiQL.createFetcher({ url: element.dataset.endpoint, headers });
  const query = "# Sandbox: book a test delivery, then play it with simulateDelivery.\n{\n  deliveries(first: 5) {\n    edges { node { id reference status } }\n  }\n}\n";
  window.ReactDOM.createRoot(element).render(
    window.React.createElement(window.GraphiQL, { fetcher, defaultQuery: query, defaultHeaders: JSON.stringify(headers, null, 2), shouldPersistHeaders: false }),
  );
});
