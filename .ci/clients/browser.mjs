// CORS as a browser sees it: Debian's headless Chromium, driven by playwright-core, loads a page
// from an allowed origin and runs the agent flow against glue with fetch (preflighted JSON:API
// posts, the agent header, tracing headers), reading the headers glue exposes; then a page from
// an origin glue does not allow, whose requests the browser must refuse. The refused preflight
// itself is checked outside the browser: a JSON:API 400.
//
// Environment: GLUE_BASE, PAGE_PORT (an origin in glue.cors_allowed_origins), OTHER_PORT (not in
// it), AGENT_USERNAME, AGENT_PASSWORD, CUSTOMER_EMAIL, CHROMIUM (default /usr/bin/chromium).

import http from "node:http";
import { chromium } from "playwright-core";

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}
function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}

const base = env("GLUE_BASE");
const allowedOrigin = `http://127.0.0.1:${env("PAGE_PORT")}`;
const otherOrigin = `http://127.0.0.1:${env("OTHER_PORT")}`;

function pageServer(port) {
  const server = http.createServer((_, response) => {
    response.writeHead(200, { "content-type": "text/html" });
    response.end("<!doctype html><title>storefront</title><p>agent assist</p>");
  });
  return new Promise((resolve) => server.listen(Number(port), "127.0.0.1", () => resolve(server)));
}

// Runs in the page.
async function agentFlow({ base, username, password, email }) {
  const jsonApi = "application/vnd.api+json";
  const post = (path, body, headers = {}) =>
    fetch(base + path, {
      method: "POST",
      headers: { "Content-Type": jsonApi, ...headers },
      body: JSON.stringify(body),
    });
  const result = {};

  const requestId = "browser-flow-0001";
  const login = await post(
    "/agent-access-tokens",
    { data: { type: "agent-access-tokens", attributes: { username, password } } },
    { "X-Request-Id": requestId, traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
  );
  result.loginStatus = login.status;
  result.loginRequestId = login.headers.get("x-request-id");
  const agent = (await login.json()).data.attributes;
  const agentHeader = { "X-Agent-Authorization": `Bearer ${agent.accessToken}` };

  const wrong = await post("/agent-access-tokens", {
    data: { type: "agent-access-tokens", attributes: { username, password: "not the password" } },
  });
  result.wrongStatus = wrong.status;
  result.wrongAuthenticate = wrong.headers.get("www-authenticate");
  result.wrongCode = (await wrong.json()).errors[0].code;

  const search = await fetch(`${base}/agent-customer-search?q=${encodeURIComponent(email)}`, {
    headers: agentHeader,
  });
  result.searchStatus = search.status;
  const customer = (await search.json()).data[0].attributes.customers[0];
  result.searchEmail = customer.email;

  const impersonation = await post(
    "/agent-customer-impersonation-access-tokens",
    {
      data: {
        type: "agent-customer-impersonation-access-tokens",
        attributes: { customerReference: customer.customerReference },
      },
    },
    agentHeader,
  );
  result.impersonationStatus = impersonation.status;
  const acting = (await impersonation.json()).data.attributes;

  const refresh = await post("/refresh-tokens", {
    data: { type: "refresh-tokens", attributes: { refreshToken: acting.refreshToken } },
  });
  result.refreshStatus = refresh.status;
  result.refreshType = (await refresh.json()).data.type;

  const logout = await fetch(`${base}/refresh-tokens/mine`, {
    method: "DELETE",
    headers: { Authorization: `Bearer ${agent.accessToken}` },
  });
  result.logoutStatus = logout.status;
  const dead = await fetch(`${base}/agent-customer-search?q=a`, { headers: agentHeader });
  result.afterLogoutStatus = dead.status;

  // A request header glue does not allow: the browser refuses it after the preflight.
  try {
    await fetch(`${base}/agent-customer-search?q=a`, { headers: { "X-Not-Allowed": "1" } });
    result.unknownHeader = "sent";
  } catch (error) {
    result.unknownHeader = error.name;
  }
  return result;
}

// Runs in the page of the origin glue does not allow.
async function refusedFlow({ base }) {
  const outcome = {};
  for (const [name, init] of [
    ["simple", {}],
    ["preflighted", { method: "POST", headers: { "Content-Type": "application/vnd.api+json" }, body: "{}" }],
  ]) {
    try {
      const response = await fetch(`${base}/agent-access-tokens`, init);
      outcome[name] = `read ${response.status}`;
    } catch (error) {
      outcome[name] = error.name;
    }
  }
  return outcome;
}

const servers = [await pageServer(env("PAGE_PORT")), await pageServer(env("OTHER_PORT"))];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage();
  await page.goto(`${allowedOrigin}/`);
  const flow = await page.evaluate(agentFlow, {
    base,
    username: env("AGENT_USERNAME"),
    password: env("AGENT_PASSWORD"),
    email: env("CUSTOMER_EMAIL"),
  });
  console.log("allowed origin:", JSON.stringify(flow));
  check(flow.loginStatus === 201, "login 201");
  check(flow.loginRequestId === "browser-flow-0001", "X-Request-Id echoed and readable");
  check(flow.wrongStatus === 401 && flow.wrongCode === "4101", "wrong password 401/4101");
  check(flow.wrongAuthenticate === 'Bearer realm="Access to shop API"', "WWW-Authenticate readable");
  check(flow.searchStatus === 200 && flow.searchEmail === env("CUSTOMER_EMAIL"), "search");
  check(flow.impersonationStatus === 201, "impersonation 201");
  check(flow.refreshStatus === 201 && flow.refreshType === "refresh-tokens", "refresh 201");
  check(flow.logoutStatus === 204 && flow.afterLogoutStatus === 401, "logout ends the session");
  check(flow.unknownHeader === "TypeError", "a header glue does not allow is refused by the browser");

  const other = await browser.newPage();
  await other.goto(`${otherOrigin}/`);
  const refused = await other.evaluate(refusedFlow, { base });
  console.log("refused origin:", JSON.stringify(refused));
  check(refused.simple === "TypeError", "a simple request's answer is withheld from another origin");
  check(refused.preflighted === "TypeError", "a preflighted request from another origin is refused");
} finally {
  await browser.close();
  for (const server of servers) server.close();
}

// The refused preflight, as the browser received it: a JSON:API error document.
const preflight = await fetch(`${base}/agent-access-tokens`, {
  method: "OPTIONS",
  headers: {
    Origin: otherOrigin,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type",
  },
});
check(preflight.status === 400, `refused preflight is 400, got ${preflight.status}`);
check(preflight.headers.get("content-type") === "application/vnd.api+json", "refused preflight is JSON:API");
const body = await preflight.json();
check(body.errors?.[0]?.status === 400 && typeof body.errors[0].detail === "string", "JSON:API error body");
check(preflight.headers.get("access-control-allow-origin") === null, "no CORS grant for the refused origin");

// The allowed origin's preflight exposes what a page needs to read.
const granted = await fetch(`${base}/agent-access-tokens`, {
  method: "OPTIONS",
  headers: {
    Origin: allowedOrigin,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type,x-agent-authorization,traceparent",
  },
});
check(granted.ok, `allowed preflight answered ${granted.status}`);
check(granted.headers.get("access-control-allow-origin") === allowedOrigin, "allowed origin granted");
console.log("headless Chromium: the agent flow cross-origin and a refused origin passed");
