// Swagger UI for /openapi.json, from the swagger-ui-dist package the gateway serves.
// The console's access token (sessionStorage, same origin) is offered to
// "Authorize", so that "Try it out" calls the API as the logged-in user.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null,
    tryItOutEnabled: false,
    onComplete: () => {
      try {
        const saved = JSON.parse(sessionStorage.getItem("tollgate.token") || "null");
        if (saved && saved.token && saved.expiresAt > Date.now()) {
          ui.preauthorizeApiKey("bearerAuth", saved.token);
        }
      } catch (_) { /* no token: Authorize by hand */ }
    },
  });
});
