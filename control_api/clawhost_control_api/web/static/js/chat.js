// The onboarding chat: one WebSocket to /ws/onboarding speaking onboarding/PROTOCOL.md (JSON text frames).
// Replies stream in as `delta` frames; a dropped connection or a reload resumes the same session (its id, not a
// secret of the account, is kept in localStorage as the protocol says); text is only ever inserted as text, never
// as HTML.
import { accessToken } from "./session.js";

const SESSION_KEY = "clawhost.onboarding.session";
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 8000;
const PHASES = ["payment_received", "starting", "live"];
// What the onboarding service removes from a message before anything keeps it (clawhost_onboarding/bot_token.py):
// the page shows the person's own message the same way, so a pasted bot token does not stay on screen.
const BOT_TOKEN_LIKE = /(?<!\d)\d{1,15}\s?:\s?[A-Za-z0-9_-]{16,}(?![A-Za-z0-9_-])/g;
const TOKEN_PLACEHOLDER = "[bot token removed]";
const CLOSE_FORBIDDEN = 4403;
const CLOSE_RATE_LIMITED = 4429;

const root = document.getElementById("chat");
const transcript = document.getElementById("transcript");
const statusLine = document.getElementById("chat-status");
const typing = document.getElementById("typing");
const errorBox = document.getElementById("chat-error");
const errorText = document.getElementById("chat-error-text");
const retryButton = document.getElementById("retry");
const retryActions = document.getElementById("retry-actions");
const signInReason = document.getElementById("sign-in-reason");
const composer = document.getElementById("composer");
const input = document.getElementById("message");
const send = document.getElementById("send");
const signInPanel = document.getElementById("sign-in-panel");
const checkoutPanel = document.getElementById("checkout-panel");
const checkoutLink = document.getElementById("checkout-link");
const provisioningPanel = document.getElementById("provisioning-panel");
const provisioningText = document.getElementById("provisioning-text");
const liveActions = document.getElementById("live-actions");
const botLink = document.getElementById("bot-link");
const reconnectButton = document.getElementById("reconnect");
const reconnectActions = document.getElementById("reconnect-actions");

let socket = null;
let retryMs = RETRY_FIRST_MS;
let streaming = null; // the assistant bubble that `delta` frames are filling
let sessionId = localStorage.getItem(SESSION_KEY);
let awaitingReply = false;

function setStatus(text) {
  statusLine.textContent = text;
}

function setConnected(connected) {
  send.disabled = !connected || awaitingReply;
  root.dataset.connected = connected ? "true" : "false";
}

function bubble(role, text) {
  const item = document.createElement("li");
  item.className = `bubble bubble-${role}`;
  item.dataset.role = role;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "clawhost";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(who, body);
  transcript.append(item);
  item.scrollIntoView({ block: "nearest" });
  return body;
}

function showError(message, retryable = false) {
  errorText.textContent = message;
  errorBox.hidden = !message;
  retryActions.hidden = !retryable;
}

function showCheckout(raw) {
  const url = safeCheckoutUrl(raw);
  if (url) {
    checkoutLink.href = url;
    checkoutPanel.hidden = false;
    signInPanel.hidden = true;
  }
}

function showTyping(on) {
  typing.hidden = !on;
}

function renderTranscript(messages) {
  transcript.replaceChildren();
  streaming = null;
  for (const message of messages || []) {
    bubble(message.role === "user" ? "user" : "assistant", message.text);
  }
}

function safeCheckoutUrl(raw) {
  try {
    const url = new URL(raw, location.href);
    // Stripe Checkout over HTTPS, or this site's own local checkout completion.
    if (url.protocol === "https:" || url.origin === location.origin) {
      return url.href;
    }
  } catch {
    // not a URL
  }
  return null;
}

function showProvisioning(frame) {
  provisioningPanel.hidden = false;
  checkoutPanel.hidden = true;
  const reached = PHASES.indexOf(frame.phase);
  for (const item of document.querySelectorAll("#progress li")) {
    const index = PHASES.indexOf(item.dataset.phase);
    item.classList.toggle("done", reached >= 0 && index < reached);
    item.classList.toggle("current", index === reached);
    if (index === reached) {
      item.setAttribute("aria-current", "step");
    } else {
      item.removeAttribute("aria-current");
    }
  }
  provisioningText.textContent = frame.text || "";
  if (frame.phase === "live" && frame.bot_username) {
    const name = String(frame.bot_username).replace(/^@/, "");
    botLink.href = `https://t.me/${encodeURIComponent(name)}`;
    botLink.textContent = `Message @${name}`;
    liveActions.hidden = false;
  }
  if (frame.phase === "failed") {
    showError(frame.text || "Your agent could not be started. We have been told; please contact support.");
  }
}

async function authenticateIfSignedIn() {
  const token = await accessToken().catch(() => null);
  if (token && socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: "authenticate", access_token: token }));
    return true;
  }
  return false;
}

function handle(frame) {
  switch (frame.type) {
    case "session":
      sessionId = frame.session_id;
      localStorage.setItem(SESSION_KEY, sessionId);
      root.dataset.state = frame.state || "";
      renderTranscript(frame.transcript);
      awaitingReply = false;
      setConnected(true);
      if (frame.checkout_url && frame.state === "AWAITING_PAYMENT") {
        showCheckout(frame.checkout_url);
      }
      if (frame.state === "COMPLETE" && frame.bot_username) {
        showProvisioning({ phase: "live", bot_username: frame.bot_username, text: "" });
      }
      break;
    case "typing":
      showTyping(true);
      break;
    case "delta":
      showTyping(false);
      if (!streaming) {
        streaming = bubble("assistant", "");
      }
      streaming.textContent += frame.text;
      break;
    case "reply":
      showTyping(false);
      if (streaming) {
        streaming.textContent = frame.text;
      } else {
        bubble("assistant", frame.text);
      }
      streaming = null;
      root.dataset.state = frame.state || root.dataset.state;
      awaitingReply = false;
      setConnected(true);
      input.focus();
      break;
    case "sign_in_required":
      signInReason.textContent = frame.reason || signInReason.textContent;
      authenticateIfSignedIn().then((sent) => {
        signInPanel.hidden = sent;
      });
      break;
    case "checkout":
      showCheckout(frame.url);
      break;
    case "provisioning":
      showProvisioning(frame);
      break;
    case "error":
      showTyping(false);
      awaitingReply = false;
      setConnected(true);
      if (frame.code === "session_expired" || frame.code === "forbidden") {
        localStorage.removeItem(SESSION_KEY);
        sessionId = null;
      }
      showError(frame.message || "Something went wrong. Please try again.", frame.retryable === true);
      break;
    default:
      break; // a frame this page does not know yet: ignored, the conversation goes on
  }
}

async function hello() {
  const token = await accessToken().catch(() => null);
  const language = navigator.language || "en";
  socket.send(JSON.stringify({ type: "hello", session_id: sessionId, language, access_token: token }));
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const current = new WebSocket(`${scheme}//${location.host}${root.dataset.socketPath}`);
  socket = current;
  current.addEventListener("open", () => {
    retryMs = RETRY_FIRST_MS;
    setStatus("Connected.");
    showError("");
    hello();
  });
  current.addEventListener("message", (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    handle(frame);
  });
  current.addEventListener("close", (event) => {
    if (socket !== current) {
      return;
    }
    setConnected(false);
    showTyping(false);
    streaming = null; // the resumed session's transcript replaces a half-streamed reply
    if (event.code === CLOSE_FORBIDDEN || event.code === CLOSE_RATE_LIMITED) {
      // The server said why (an error frame came first); trying again at once would only be refused again.
      setStatus("Disconnected.");
      reconnectActions.hidden = false;
      return;
    }
    const wait = retryMs * (0.8 + Math.random() * 0.4);
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    setStatus("Connection lost. Reconnecting… your conversation is kept.");
    setTimeout(connect, wait);
  });
}

composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text || !socket || socket.readyState !== WebSocket.OPEN || awaitingReply) {
    return;
  }
  socket.send(JSON.stringify({ type: "message", text }));
  bubble("user", text.replace(BOT_TOKEN_LIKE, TOKEN_PLACEHOLDER));
  input.value = "";
  awaitingReply = true;
  showError("");
  setConnected(true);
});

retryButton.addEventListener("click", () => {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: "retry" }));
    awaitingReply = true;
    showError("");
    setConnected(true);
  }
});

reconnectButton.addEventListener("click", () => {
  reconnectActions.hidden = true;
  retryMs = RETRY_FIRST_MS;
  setStatus("Connecting…");
  connect();
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    composer.requestSubmit();
  }
});

connect();
