// The agent flow through a TypeScript client generated from the running service's /openapi.json
// (openapi-typescript types + openapi-fetch), type-checked by `tsc --strict`: login → search →
// impersonate → refresh → logout. Every 2xx body is assigned to the schema type the document
// names, so a document that stops describing an answer fails to compile; the runtime checks
// make sure the answers are what the types promise. Then jose verifies a token knowing only the
// discovery document (issuer and jwks_uri), as a resource server would.
//
// Environment: GLUE_BASE (the service), AGENT_USERNAME, AGENT_PASSWORD, CUSTOMER_EMAIL.

import createClient from "openapi-fetch";
import { createRemoteJWKSet, jwtVerify } from "jose";
import type { components, paths } from "./generated/glue.js";

type Schemas = components["schemas"];

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(`check failed: ${what}`);
}

const base = env("GLUE_BASE");
const glue = createClient<paths>({
  baseUrl: base,
  headers: { "Content-Type": "application/vnd.api+json" },
});

// Login.
const login = await glue.POST("/agent-access-tokens", {
  body: {
    data: {
      type: "agent-access-tokens",
      attributes: { username: env("AGENT_USERNAME"), password: env("AGENT_PASSWORD") },
    },
  },
});
check(login.response.status === 201 && login.data !== undefined, `login answered ${login.response.status}`);
const agent: Schemas["AgentAccessTokenDocument"] = login.data;
check(agent.data.type === "agent-access-tokens", "login type");
check(agent.data.attributes.tokenType === "Bearer", "login tokenType");
const agentHeader = `Bearer ${agent.data.attributes.accessToken}`;

// A wrong password: the typed error document.
const refused = await glue.POST("/agent-access-tokens", {
  body: {
    data: {
      type: "agent-access-tokens",
      attributes: { username: env("AGENT_USERNAME"), password: "not the password" },
    },
  },
});
check(refused.response.status === 401 && refused.error !== undefined, "wrong password is 401");
const refusal: Schemas["ErrorDocument"] = refused.error;
check(refusal.errors[0]?.code === "4101", "wrong password code 4101");

// Search.
const search = await glue.GET("/agent-customer-search", {
  params: {
    query: { q: env("CUSTOMER_EMAIL"), "page[limit]": 5 },
    header: { "X-Agent-Authorization": agentHeader },
  },
});
check(search.response.status === 200 && search.data !== undefined, `search answered ${search.response.status}`);
const found: Schemas["CustomerSearchDocument"] = search.data;
const customer: Schemas["Customer"] | undefined = found.data[0]?.attributes.customers[0];
check(customer !== undefined && customer.email === env("CUSTOMER_EMAIL"), "search finds the customer");

// Impersonate.
const impersonation = await glue.POST("/agent-customer-impersonation-access-tokens", {
  params: { header: { "X-Agent-Authorization": agentHeader } },
  body: {
    data: {
      type: "agent-customer-impersonation-access-tokens",
      attributes: { customerReference: customer.customerReference },
    },
  },
});
check(impersonation.response.status === 201 && impersonation.data !== undefined, "impersonation is 201");
const acting: Schemas["AgentCustomerImpersonationAccessTokenDocument"] = impersonation.data;
check(acting.data.type === "agent-customer-impersonation-access-tokens", "impersonation type");

// Refresh the impersonation session.
const refresh = await glue.POST("/refresh-tokens", {
  body: {
    data: {
      type: "refresh-tokens",
      attributes: { refreshToken: acting.data.attributes.refreshToken },
    },
  },
});
check(refresh.response.status === 201 && refresh.data !== undefined, "refresh is 201");
const refreshed: Schemas["RefreshTokenDocument"] = refresh.data;
check(refreshed.data.type === "refresh-tokens", "refresh type");
check(refreshed.data.attributes.refreshToken !== acting.data.attributes.refreshToken, "rotated");

// Verify the refreshed token the way a resource server would: from the discovery document alone.
const metadataResponse = await glue.GET("/.well-known/oauth-authorization-server");
check(metadataResponse.data !== undefined, "discovery document");
const metadata: Schemas["AuthorizationServerMetadata"] = metadataResponse.data;
const { payload } = await jwtVerify(
  refreshed.data.attributes.accessToken,
  createRemoteJWKSet(new URL(metadata.jwks_uri)),
  { issuer: metadata.issuer, algorithms: metadata.id_token_signing_alg_values_supported },
);
check(payload.iss === metadata.issuer, "iss is the advertised issuer");

// Logout: the customer-side session by its token, then every session of the agent.
const logoutOne = await glue.DELETE("/refresh-tokens/{refreshToken}", {
  params: { path: { refreshToken: refreshed.data.attributes.refreshToken } },
  headers: { Authorization: `Bearer ${refreshed.data.attributes.accessToken}` },
});
check(logoutOne.response.status === 204, "logout of one token is 204");
const logoutAll = await glue.DELETE("/refresh-tokens/mine", {
  headers: { Authorization: agentHeader },
});
check(logoutAll.response.status === 204, "logout of every token is 204");

// The ended session's access token is refused at once.
const after = await glue.GET("/agent-customer-search", {
  params: { query: { q: "a" }, header: { "X-Agent-Authorization": agentHeader } },
});
check(after.response.status === 401 && after.error !== undefined, "the agent's token is dead after logout");
const dead: Schemas["ErrorDocument"] = after.error;
check(dead.errors[0]?.code === "4102", "dead agent token code 4102");

console.log("TypeScript client: login → search → impersonate → refresh → jose verify → logout passed");
