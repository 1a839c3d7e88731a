// The dashboard, live: one streamed request to /agent/events (Server-Sent Events read with fetch, so the access
// token travels in the Authorization header, never in the URL) keeps the agent's state, usage and the platform's
// health current; the buttons and forms call the JSON API and say what they are doing and how it went.
// Text from the server is only ever inserted as text; the one exception is the usage chart, an SVG the server
// draws from numbers (dashboard/usage_chart.py).
import { accessToken, authorizedFetch, loginUrl, NotSignedInError } from "./session.js";

const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 8000;
const NOTE_AFTER_MS = 3000; // a reconnect quicker than this is not worth a word
const CONFIRMATION = "delete my agent";
const STATE_WORDS = {
  running: "Running",
  starting: "Starting",
  suspended: "Suspended",
  payment_needed: "Payment needed",
  cancelled: "Cancelled",
  failed: "Needs attention",
  no_agent: "No agent yet",
};

const $ = (id) => document.getElementById(id);
const root = $("dashboard");
let agent = null; // the last `agent` event's view
let settingsDirty = false;
let deleted = false;

// ---- errors in words ---------------------------------------------------------------------------------------

async function problem(response) {
  let detail = "";
  try {
    const body = await response.json();
    detail = Array.isArray(body.detail) ? body.detail.map((e) => e.msg).join("; ") : String(body.detail || "");
  } catch {
    detail = "";
  }
  const sentence = detail ? detail.charAt(0).toUpperCase() + detail.slice(1) : "";
  if (response.status === 503 || response.status === 502) {
    return `${sentence || "A service we depend on did not answer"}. Nothing was changed; try again in a moment.`;
  }
  if (response.status === 409 || response.status === 422) {
    return `${sentence}.`;
  }
  if (response.status === 429) {
    return "Too many requests: wait a minute and try again.";
  }
  return `${sentence || "Something went wrong"} (error ${response.status}). Try again; if it keeps happening, contact support.`;
}

function say(element, text, kind) {
  element.textContent = text;
  element.dataset.kind = kind; // progress, ok, error
}

// Runs one action: shows progress, calls the API, says how it went. `request` answers a Response.
async function act(button, result, progress, request, success) {
  if (button) button.disabled = true;
  say(result, progress, "progress");
  try {
    const response = await request();
    if (response.ok) {
      await success(response);
    } else {
      say(result, await problem(response), "error");
    }
  } catch (error) {
    if (error instanceof NotSignedInError) {
      signedOut(result);
    } else {
      say(result, "We could not reach clawhost. Check your connection and try again; nothing was changed.", "error");
    }
  } finally {
    if (button) button.disabled = false;
  }
}

function signedOut(result) {
  result.textContent = "";
  const text = document.createTextNode("You are signed out. ");
  const link = document.createElement("a");
  link.href = loginUrl();
  link.textContent = "Log in again";
  result.append(text, link);
  result.dataset.kind = "error";
}

function jsonRequest(method, url, body) {
  return () =>
    authorizedFetch(url, {
      method,
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
}

// ---- what the stream says ----------------------------------------------------------------------------------

function showAgent(payload) {
  if (deleted) return;
  const { status } = payload;
  agent = payload.agent;
  const card = $("status-card");
  const before = card.dataset.state;
  card.dataset.tone = status.tone;
  card.dataset.state = status.state;
  $("status-state-word").textContent = STATE_WORDS[status.state] || status.state;
  $("status-headline").textContent = status.headline;
  $("status-detail").textContent = status.detail;
  if (before !== status.state) {
    $("status-announce").textContent = status.headline;
  }
  const actions = { resume: "action-resume", portal: "action-portal", checkout: "action-checkout",
    bot_token: "action-bot-token", support: "action-support" };
  for (const [name, id] of Object.entries(actions)) {
    $(id).hidden = status.action !== name || (name === "checkout" && !agent);
  }
  $("action-chat").hidden = Boolean(agent);
  root.dataset.agent = String(Boolean(agent));
  for (const part of document.querySelectorAll(".agent-only")) part.hidden = !agent;
  if (!agent) return;
  showPlan(payload.plan);
  showSettings(payload.choices);
  const suspend = $("suspend-button");
  suspend.dataset.suspended = String(agent.suspended);
  suspend.textContent = agent.suspended ? "Resume my agent" : "Suspend my agent";
  suspend.disabled = agent.suspended_by.includes("platform");
}

function showPlan(plan) {
  $("plan-current").textContent = plan.current;
  $("plan-renewal").textContent = plan.renewal || "not yet: after your first payment";
  for (const end of document.querySelectorAll(".period-end")) {
    end.textContent = plan.renewal || "at the end of the period";
  }
  $("plan-pending").hidden = !plan.pending;
  $("plan-pending").textContent = plan.pending || "";
  for (const item of document.querySelectorAll(".plan-choice")) {
    const direction = plan.directions[item.dataset.tier];
    const button = item.querySelector(".plan-button");
    button.dataset.direction = direction;
    button.hidden = direction === "current";
    const name = item.querySelector("h3").firstChild.textContent.trim();
    button.textContent = `${direction === "up" ? "Upgrade" : "Downgrade"} to ${name}`;
    item.querySelector(".current-badge").hidden = direction !== "current";
  }
}

function replaceOptions(select, values, chosen) {
  const current = [...select.options].map((o) => o.value).join(",");
  if (current !== values.join(",")) {
    select.replaceChildren(...values.map((value) => new Option(value, value)));
  }
  select.value = chosen;
}

function showSettings(choices) {
  $("users-max").textContent = String(choices.users_max);
  $("inactive-users").hidden = agent.inactive_user_ids.length === 0;
  $("inactive-list").textContent = agent.inactive_user_ids.join(", ");
  if (settingsDirty) return; // never overwrite what the person is typing
  $("allowed-users").value = agent.allowed_user_ids.join(", ");
  replaceOptions($("model"), choices.models, agent.model);
  replaceOptions($("thinking"), choices.levels, agent.thinking);
}

function showUsage(payload) {
  $("usage-body").hidden = false;
  $("usage-missing").hidden = true;
  const meter = $("usage-meter");
  meter.value = payload.gauge.percent;
  meter.setAttribute("aria-valuetext", payload.gauge.text);
  $("usage-text").textContent = payload.gauge.text;
  $("usage-chart").innerHTML = payload.chart_svg; // drawn by our server from numbers (see the header)
  root.dataset.tokensUsed = String(payload.usage.tokens_used);
}

function showHealth(payload) {
  const banner = $("health-banner");
  banner.replaceChildren(
    ...payload.messages.map((message) => {
      const p = document.createElement("p");
      p.textContent = message;
      return p;
    }),
  );
  banner.hidden = payload.messages.length === 0;
}

// ---- the stream --------------------------------------------------------------------------------------------

function connectionNote(text) {
  const note = $("connection-note");
  note.textContent = text;
  note.hidden = !text;
}

function parseBlock(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trim());
  }
  return data.length ? { name, data: JSON.parse(data.join("\n")) } : null;
}

// One connection: resolves when it ends; `true` when the server asked for a fresh token.
async function streamOnce(onOpen) {
  let token = await accessToken();
  if (token === null) throw new NotSignedInError();
  let response = await fetch("/agent/events", {
    headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
    cache: "no-store",
    credentials: "same-origin",
  });
  if (response.status === 401) {
    token = await accessToken({ renew: true });
    if (token === null) throw new NotSignedInError();
    response = await fetch("/agent/events", {
      headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
      cache: "no-store",
      credentials: "same-origin",
    });
  }
  if (response.status === 401) throw new NotSignedInError();
  if (!response.ok || !response.body) throw new Error(`the live stream answered ${response.status}`);
  onOpen();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buffer += value.replaceAll("\r\n", "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = parseBlock(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 2);
      if (!event) continue;
      if (event.name === "agent") showAgent(event.data);
      else if (event.name === "usage") showUsage(event.data);
      else if (event.name === "health") showHealth(event.data);
      else if (event.name === "expired") {
        await reader.cancel();
        return true;
      }
    }
  }
}

async function stayLive() {
  let retryMs = RETRY_FIRST_MS;
  let noteTimer = null;
  while (!deleted) {
    let renew = false;
    try {
      renew = await streamOnce(() => {
        retryMs = RETRY_FIRST_MS;
        clearTimeout(noteTimer);
        noteTimer = null;
        connectionNote("");
        root.dataset.live = "true";
      });
    } catch (error) {
      if (error instanceof NotSignedInError) {
        connectionNote("");
        const note = $("connection-note");
        note.hidden = false;
        signedOut(note);
        root.dataset.live = "false";
        return;
      }
    }
    root.dataset.live = "false";
    if (deleted) return;
    if (renew) {
      await accessToken({ renew: true }).catch(() => null);
      continue;
    }
    if (noteTimer === null) {
      noteTimer = setTimeout(
        () => connectionNote("Reconnecting to keep this page up to date… Everything you entered stays here."),
        NOTE_AFTER_MS,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, retryMs));
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  }
}

// ---- actions -----------------------------------------------------------------------------------------------

async function goTo(response) {
  const body = await response.json();
  location.assign(body.url);
}

function portal(button, result, tier) {
  const body = tier ? { tier } : undefined;
  return act(button, result, "Opening the Stripe billing portal…", jsonRequest("POST", "/billing/portal", body), goTo);
}

function checkout(button, result, tier) {
  return act(button, result, "Opening the Stripe checkout…", jsonRequest("POST", "/billing/checkout", { tier }), goTo);
}

function setSuspended(button, result, suspend) {
  return act(
    button,
    result,
    suspend ? "Suspending your agent…" : "Resuming your agent…",
    jsonRequest("PATCH", "/agent", { suspend }),
    async () => {
      say(result, suspend ? "Suspended. Your agent stops in a few seconds." : "Resumed. Your agent starts in a moment.", "ok");
    },
  );
}

function parseIds(text) {
  const parts = text.split(/[\s,;]+/).filter(Boolean);
  const bad = parts.filter((p) => !/^\d{1,19}$/.test(p) || Number(p) <= 0);
  return { ids: parts.map(Number), bad };
}

function wire() {
  $("action-resume").addEventListener("click", (e) => setSuspended(e.currentTarget, $("status-action-result"), false));
  $("action-portal").addEventListener("click", (e) => portal(e.currentTarget, $("status-action-result")));
  $("action-checkout").addEventListener("click", (e) =>
    checkout(e.currentTarget, $("status-action-result"), agent ? agent.tier : undefined),
  );
  $("portal-button").addEventListener("click", (e) => portal(e.currentTarget, $("plan-result")));
  for (const button of document.querySelectorAll(".plan-button")) {
    button.addEventListener("click", async () => {
      const live = agent && agent.billing_state && !["canceled", "incomplete_expired", "incomplete"].includes(agent.billing_state);
      if (live) await portal(button, $("plan-result"), button.dataset.tier);
      else await checkout(button, $("plan-result"), button.dataset.tier);
    });
  }

  const form = $("settings-form");
  form.addEventListener("input", () => {
    settingsDirty = true;
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const result = $("settings-result");
    const field = $("allowed-users");
    const { ids, bad } = parseIds(field.value);
    if (bad.length || ids.length === 0) {
      field.setAttribute("aria-invalid", "true");
      say(result, bad.length ? `Not a Telegram user id: ${bad.join(", ")}. Ids are whole numbers, like 123456789.`
        : "Enter at least one Telegram user id.", "error");
      field.focus();
      return;
    }
    field.removeAttribute("aria-invalid");
    const body = { allowed_user_ids: ids, model: $("model").value, thinking: $("thinking").value };
    act($("settings-save"), result, "Saving your settings…", jsonRequest("PATCH", "/agent", body), async () => {
      settingsDirty = false;
      say(result, "Saved. Your agent restarts with the new settings in a few seconds.", "ok");
    });
  });

  $("bot-token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("bot-token");
    const result = $("bot-token-result");
    if (!/^\d{5,12}:[A-Za-z0-9_-]{30,64}$/.test(input.value.trim())) {
      input.setAttribute("aria-invalid", "true");
      say(result, "That is not a bot token. Copy the whole token @BotFather gave you, like 123456789:AAH…", "error");
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    const body = { bot_token: input.value.trim() };
    act($("bot-token-save"), result, "Replacing the bot token…", jsonRequest("PUT", "/agent/bot-token", body), async () => {
      input.value = "";
      say(result, "Token replaced. Your agent restarts with it in a few seconds.", "ok");
    });
  });

  $("suspend-button").addEventListener("click", (e) => {
    const button = e.currentTarget;
    setSuspended(button, $("suspend-result"), button.dataset.suspended !== "true");
  });

  const confirmation = $("delete-confirmation");
  confirmation.addEventListener("input", () => {
    $("delete-button").disabled = confirmation.value.trim().toLowerCase() !== CONFIRMATION;
  });
  $("delete-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const result = $("delete-result");
    if (confirmation.value.trim().toLowerCase() !== CONFIRMATION) {
      say(result, `Type "${CONFIRMATION}" to confirm.`, "error");
      return;
    }
    act(
      $("delete-button"),
      result,
      "Deleting your agent: cancelling the subscription, then removing the agent…",
      jsonRequest("DELETE", "/agent", { confirmation: confirmation.value }),
      async () => {
        deleted = true;
        agent = null;
        for (const part of document.querySelectorAll(".agent-only")) part.hidden = true;
        const card = $("status-card");
        card.dataset.state = "no_agent";
        card.dataset.tone = "attention";
        $("status-state-word").textContent = STATE_WORDS.no_agent;
        $("status-headline").textContent = "Your agent is deleted";
        $("status-detail").textContent = "Your subscription is cancelled and nothing more will be charged. You can set up a new agent any time.";
        for (const id of ["action-resume", "action-portal", "action-checkout", "action-bot-token", "action-support"]) $(id).hidden = true;
        $("action-chat").hidden = false;
        $("status-announce").textContent = "Your agent is deleted";
        $("status-headline").focus();
      },
    );
  });
  $("status-headline").tabIndex = -1;
}

wire();
stayLive();
