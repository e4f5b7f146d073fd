/* Herald web chat widget.
 *
 * <script src="https://herald.example/chat/widget.js" data-bot="BOT_ID" async></script>
 * Optional: data-visitor + data-token (a logged-in user; the token comes from your server),
 * data-title, data-open="true". See Herald's README, "Web chat".
 */
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || !script.dataset.bot) {
    console.error("Herald chat: the script tag needs data-bot=\"<bot id>\".");
    return;
  }
  const botId = script.dataset.bot;
  const origin = new URL(script.src, location.href);
  const httpBase = `${origin.protocol}//${origin.host}/chat/${encodeURIComponent(botId)}`;
  const wsBase = `${origin.protocol === "https:" ? "wss:" : "ws:"}//${origin.host}/chat/${encodeURIComponent(botId)}/ws`;
  const storeKey = `herald-chat:${botId}`;

  const load = () => {
    try { return JSON.parse(localStorage.getItem(storeKey) || "{}"); } catch { return {}; }
  };
  const state = load();
  const save = () => {
    try { localStorage.setItem(storeKey, JSON.stringify({ visitorId: state.visitorId, token: state.token, pending: state.pending })); } catch { /* private mode */ }
  };
  if (script.dataset.visitor) {
    state.visitorId = script.dataset.visitor;
    state.token = script.dataset.token || "";
  }
  state.pending = state.pending || {}; // clientId -> text, resent until acknowledged

  // -- view -------------------------------------------------------------------------------
  const host = document.createElement("div");
  host.id = "herald-chat";
  const root = host.attachShadow({ mode: "open" });
  root.innerHTML = `
    <style>
      :host { all: initial; }
      .launcher { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; border: 0;
        border-radius: 24px; padding: 12px 18px; background: #1f6feb; color: #fff;
        font: 600 14px system-ui, sans-serif; cursor: pointer; box-shadow: 0 4px 14px #0003; }
      .panel { position: fixed; right: 20px; bottom: 76px; z-index: 2147483000; width: 340px;
        max-width: calc(100vw - 40px); height: 460px; max-height: calc(100vh - 100px);
        display: none; flex-direction: column; background: #fff; color: #1b1f24;
        border-radius: 12px; box-shadow: 0 8px 30px #0004; font: 14px/1.4 system-ui, sans-serif;
        overflow: hidden; }
      .panel.open { display: flex; }
      header { padding: 12px 14px; background: #1f6feb; color: #fff; font-weight: 600;
        display: flex; justify-content: space-between; align-items: center; }
      header button { background: none; border: 0; color: #fff; font-size: 18px; cursor: pointer; }
      .status { font: 12px system-ui, sans-serif; opacity: .85; font-weight: 400; }
      .log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 8px;
        background: #f6f8fa; }
      .msg { max-width: 80%; padding: 8px 11px; border-radius: 12px; white-space: pre-wrap;
        overflow-wrap: anywhere; }
      .msg.bot { align-self: flex-start; background: #fff; border: 1px solid #d0d7de; }
      .msg.me { align-self: flex-end; background: #1f6feb; color: #fff; }
      .msg.pending { opacity: .6; }
      .msg img { display: block; max-width: 100%; border-radius: 8px; margin-bottom: 6px; }
      .msg a.button { display: inline-block; margin-top: 6px; padding: 5px 10px; border-radius: 8px;
        background: #eaeef2; color: #0969da; text-decoration: none; font-weight: 600; }
      form { display: flex; gap: 6px; padding: 10px; border-top: 1px solid #d0d7de; }
      input { flex: 1; padding: 8px 10px; border: 1px solid #d0d7de; border-radius: 8px; font: inherit; }
      form button { padding: 8px 12px; border: 0; border-radius: 8px; background: #1f6feb; color: #fff;
        font: inherit; font-weight: 600; cursor: pointer; }
      .error { padding: 8px 12px; color: #cf222e; font-size: 13px; }
    </style>
    <button class="launcher" part="launcher" aria-label="Open chat"></button>
    <section class="panel" role="dialog" aria-label="Chat" data-testid="herald-chat-panel">
      <header><span><span class="title"></span><br><span class="status">connecting…</span></span>
        <button class="close" aria-label="Close chat">×</button></header>
      <div class="log" role="log" aria-live="polite"></div>
      <div class="error" hidden></div>
      <form><input name="text" autocomplete="off" placeholder="Type a message…" aria-label="Message"
        maxlength="4000"><button type="submit">Send</button></form>
    </section>`;
  const $ = (selector) => root.querySelector(selector);
  const panel = $(".panel"), log = $(".log"), input = $("input"), statusLine = $(".status");
  const errorLine = $(".error");
  const title = script.dataset.title || "Chat";
  $(".launcher").textContent = title;
  $(".title").textContent = title;

  const shown = new Map(); // message id -> {el, frame}
  let lastId = 0;
  let socket = null;
  let retry = 0;
  let stopped = false;

  const isOpen = () => panel.classList.contains("open");
  const safeUrl = (value) => {
    try {
      const url = new URL(value);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch { return null; }
  };
  const send = (frame) => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  };
  const showError = (text) => { errorLine.hidden = !text; errorLine.textContent = text || ""; };

  function bubble(frame) {
    const el = document.createElement("div");
    el.className = `msg ${frame.direction === "inbound" ? "me" : "bot"}`;
    el.dataset.id = frame.id;
    const image = frame.imageUrl && safeUrl(frame.imageUrl);
    if (image) {
      const img = document.createElement("img");
      img.src = image;
      img.alt = "";
      el.append(img);
    }
    el.append(document.createTextNode(frame.text || ""));
    const link = frame.buttonUrl && safeUrl(frame.buttonUrl);
    if (link) {
      const a = document.createElement("a");
      a.className = "button";
      a.href = link;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.textContent = frame.buttonText || link;
      el.append(document.createElement("br"), a);
    }
    return el;
  }

  function markRead() {
    if (!isOpen() || document.visibilityState !== "visible") return;
    for (const [id, item] of shown) {
      if (item.frame.direction === "outbound" && item.frame.status !== "read") {
        item.frame.status = "read";
        send({ type: "receipt", id, status: "read" });
      }
    }
  }

  function receive(frame) {
    if (frame.type === "message") {
      lastId = Math.max(lastId, frame.id);
      if (shown.has(frame.id)) return;
      const mine = frame.clientId && root.querySelector(`.pending[data-client-id="${CSS.escape(frame.clientId)}"]`);
      const el = bubble(frame);
      if (mine) mine.replaceWith(el); else log.append(el);
      shown.set(frame.id, { el, frame });
      if (frame.direction === "outbound" && (frame.status === "sent" || !frame.status)) {
        frame.status = "delivered";
        send({ type: "receipt", id: frame.id, status: "delivered" });
      }
      log.scrollTop = log.scrollHeight;
      markRead();
    } else if (frame.type === "ack") {
      delete state.pending[frame.clientId];
      save();
    } else if (frame.type === "error") {
      showError(frame.error);
    }
  }

  function showPending(clientId, text) {
    const el = bubble({ direction: "inbound", text });
    el.classList.add("pending");
    el.dataset.clientId = clientId;
    log.append(el);
    log.scrollTop = log.scrollHeight;
  }

  const newId = () => (crypto.randomUUID ? crypto.randomUUID()
    : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`);

  $("form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    const clientId = newId();
    state.pending[clientId] = text;
    save();
    showPending(clientId, text);
    send({ type: "text", text, clientId });
  });
  const setOpen = (open) => {
    panel.classList.toggle("open", open);
    if (open) { input.focus(); markRead(); }
  };
  $(".launcher").addEventListener("click", () => setOpen(!isOpen()));
  $(".close").addEventListener("click", () => setOpen(false));
  document.addEventListener("visibilitychange", markRead);

  // -- connection -------------------------------------------------------------------------
  async function ensureVisitor() {
    if (state.visitorId && state.token) return;
    const response = await fetch(`${httpBase}/visitors`, { method: "POST" });
    if (!response.ok) throw new Error(`Herald answered ${response.status}`);
    const data = await response.json();
    state.visitorId = data.visitorId;
    state.token = data.token;
    save();
  }

  function reconnectLater() {
    if (stopped) return;
    const delay = Math.min(30000, 1000 * 2 ** retry) * (0.5 + Math.random() / 2);
    retry += 1;
    statusLine.textContent = "reconnecting…";
    setTimeout(connect, delay);
  }

  async function connect() {
    try {
      await ensureVisitor();
    } catch (error) {
      console.warn("Herald chat:", error);
      reconnectLater();
      return;
    }
    const query = new URLSearchParams({ visitor: state.visitorId, token: state.token, after: String(lastId) });
    socket = new WebSocket(`${wsBase}?${query}`);
    socket.addEventListener("open", () => {
      retry = 0;
      statusLine.textContent = "online";
      showError("");
      // Texts typed while offline (or not acknowledged before a drop) go now; the server
      // ignores a clientId it has already stored.
      for (const [clientId, text] of Object.entries(state.pending)) {
        if (!root.querySelector(`.pending[data-client-id="${CSS.escape(clientId)}"]`)) showPending(clientId, text);
        send({ type: "text", text, clientId });
      }
    });
    socket.addEventListener("message", (event) => {
      try { receive(JSON.parse(event.data)); } catch (error) { console.warn("Herald chat:", error); }
    });
    socket.addEventListener("close", (event) => {
      socket = null;
      if (event.code === 4403 && !script.dataset.visitor) {
        // An anonymous visitor whose token no longer matches: start as a new visitor.
        state.visitorId = state.token = undefined;
        save();
      } else if (event.code === 4403 || event.code === 4404) {
        stopped = true;
        statusLine.textContent = "offline";
        showError(event.reason || "This chat is not available.");
        return;
      }
      reconnectLater();
    });
  }

  (document.body || document.documentElement).append(host);
  if (script.dataset.open === "true") setOpen(true);
  window.HeraldChat = { open: () => setOpen(true), close: () => setOpen(false) };
  connect();
})();
