// The API browser at /docs: Swagger UI, vendored in static/vendor/swagger-ui (no CDN), started
// from this file rather than an inline script so that the page keeps a strict
// Content-Security-Policy.
//
// persistAuthorization is off: a password, token or API key typed into "Authorize" lives in this
// page's memory only. It is never written to localStorage, where any script of the origin (the
// dashboard's) could read it long after; a reload or a closed tab forgets it.
// validatorUrl null: Swagger UI would otherwise send the schema's URL to validator.swagger.io.
const root = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  persistAuthorization: false,
  validatorUrl: null,
  deepLinking: true,
  showExtensions: true,
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis],
});
