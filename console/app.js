// The Tollgate web console: plain JavaScript, no build step, no dependency.
//
// Login: the console links to /auth/google; the provider sends the browser back to
// /auth/callback, where the gateway serves this same page to a browser (one that
// asks for text/html). The page then repeats that request asking for JSON, with the
// login cookie, gets the token response of API.md and keeps the access token in
// sessionStorage (this tab only; never a cookie, so no other request carries it).
"use strict";

const TOKEN_KEY = "tollgate.token";
const JOBS_KEY = "tollgate.jobs";
const POLL_MS = 1000;
const DONE = new Set(["completed", "failed"]);

const $ = (id) => document.getElementById(id);
const state = { me: null, pollTimer: null, polledJob: null };

// ---- token --------------------------------------------------------------------

function saveToken(response) {
  const expiresAt = Date.now() + (response.expires_in || 0) * 1000;
  sessionStorage.setItem(
    TOKEN_KEY, JSON.stringify({ token: response.access_token, expiresAt }));
}

function currentToken() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || "null");
    if (saved && saved.token && saved.expiresAt > Date.now()) return saved.token;
  } catch (_) { /* a damaged entry is the same as none */ }
  sessionStorage.removeItem(TOKEN_KEY);
  return null;
}

function logOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(JOBS_KEY);
  stopPolling();
  state.me = null;
  showWelcome();
  if (message) flash(message);
}

// ---- API ----------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const detail = (body && body.detail) || {};
    super(detail.message || `The request failed (${status}).`);
    this.status = status;
    this.code = detail.error || "unknown";
    this.detail = detail;
  }
}

function idempotencyKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json" };
  const token = currentToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (options.idempotent) headers["Idempotency-Key"] = idempotencyKey();
  let response;
  try {
    response = await fetch(path, {
      method: options.method || "GET",
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: "same-origin",
    });
  } catch (_) {
    throw new ApiError(0, { detail: { message: "The gateway cannot be reached." } });
  }
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON: keep null */ }
  if (!response.ok) {
    const error = new ApiError(response.status, body);
    if (response.status === 401 && token) {
      logOut("Your session has ended. Please log in again.");
    }
    throw error;
  }
  return body;
}

// ---- rendering helpers --------------------------------------------------------

function flash(message) {
  const box = $("flash");
  box.textContent = message;
  box.hidden = !message;
}

function show(id, text, kind) {
  const box = $(id);
  box.textContent = text;
  box.className = `result ${kind || ""}`.trim();
}

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

function setText(id, text) { $(id).textContent = text == null ? "" : String(text); }

function busy(form, on) {
  for (const button of form.querySelectorAll("button")) button.disabled = on;
  form.setAttribute("aria-busy", on ? "true" : "false");
}

// ---- pages --------------------------------------------------------------------

function showWelcome() {
  $("welcome").hidden = false;
  $("console").hidden = true;
  $("signing-in").hidden = true;
  $("whoami").hidden = true;
  $("logout").hidden = true;
}

async function showConsole() {
  $("welcome").hidden = true;
  $("signing-in").hidden = true;
  let me;
  try {
    me = await api("/api/me");
  } catch (error) {
    if (error.status !== 401) flash(error.message);
    if (error.status !== 401) showWelcome();
    return;
  }
  state.me = me;
  $("console").hidden = false;
  $("whoami").hidden = false;
  $("logout").hidden = false;
  setText("whoami", `${me.user.email} · ${me.user.role}`);
  renderOverview(me);
  renderGrantForm(me.user.role);
  renderJobList();
  selectTab(location.hash.replace("#", "") || "overview", false);
}

function renderOverview(me) {
  setText("me-name", me.user.name);
  setText("me-email", me.user.email);
  setText("me-role", me.user.role);
  $("me-role").className = `badge ${me.user.role}`;
  setText("me-id", me.user.id);
  setText("me-created", when(me.user.created_at));
  setText("org-name", me.organisation.name);
  setText("org-slug", me.organisation.slug);
  setText("org-id", me.organisation.id);
  setText("org-created", when(me.organisation.created_at));
}

function renderGrantForm(role) {
  const admin = role === "admin";
  $("grant-fields").disabled = !admin;
  $("grant-note").hidden = admin;
}

async function loadBalance() {
  try {
    const balance = await api("/api/credits/balance");
    setText("balance", balance.balance);
    const rows = $("transactions");
    rows.replaceChildren();
    for (const t of balance.recent_transactions) {
      const row = document.createElement("tr");
      const amount = t.amount > 0 ? `+${t.amount}` : String(t.amount);
      for (const [text, cls] of [[when(t.created_at), ""], [t.reason, ""],
        [amount, `num ${t.amount < 0 ? "debit" : "credit"}`]]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        if (cls) cell.className = cls;
        row.append(cell);
      }
      rows.append(row);
    }
    $("no-transactions").hidden = balance.recent_transactions.length > 0;
  } catch (error) {
    show("grant-result", error.message, "error");
  }
}

// ---- tabs ---------------------------------------------------------------------

const TABS = ["overview", "credits", "analyse", "summarise", "jobs"];

function selectTab(name, focus) {
  if (!TABS.includes(name)) name = "overview";
  for (const tab of TABS) {
    const selected = tab === name;
    const button = $(`tab-${tab}`);
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
    $(`panel-${tab}`).hidden = !selected;
    if (selected && focus) button.focus();
  }
  if (history.replaceState) history.replaceState(null, "", name === "overview" ? "/" : `/#${name}`);
  if (name === "credits") loadBalance();
  if (name === "jobs" && state.polledJob) pollJob(state.polledJob);
}

function wireTabs() {
  for (const tab of TABS) {
    $(`tab-${tab}`).addEventListener("click", () => selectTab(tab, false));
  }
  document.querySelector("[role=tablist]").addEventListener("keydown", (event) => {
    const current = TABS.findIndex((t) => $(`tab-${t}`).getAttribute("aria-selected") === "true");
    const moves = { ArrowRight: 1, ArrowLeft: -1 };
    if (event.key in moves) {
      selectTab(TABS[(current + moves[event.key] + TABS.length) % TABS.length], true);
      event.preventDefault();
    } else if (event.key === "Home" || event.key === "End") {
      selectTab(event.key === "Home" ? TABS[0] : TABS[TABS.length - 1], true);
      event.preventDefault();
    }
  });
}

// ---- forms --------------------------------------------------------------------

function wireForms() {
  $("grant-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    busy(form, true);
    try {
      const granted = await api("/api/credits/grant", {
        method: "POST",
        idempotent: true,
        body: { amount: Number($("grant-amount").value), reason: $("grant-reason").value },
      });
      show("grant-result", `${granted.message}. New balance: ${granted.balance}.`, "success");
      await loadBalance();
    } catch (error) {
      show("grant-result", error.message, "error");
    } finally {
      busy(form, false);
      renderGrantForm(state.me ? state.me.user.role : "member");
    }
  });

  $("analyse-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    busy(form, true);
    show("analyse-result", "Analysing…");
    try {
      const analysed = await api("/api/analyse", {
        method: "POST", idempotent: true, body: { text: $("analyse-text").value },
      });
      show("analyse-result",
        `${analysed.result} Credits remaining: ${analysed.credits_remaining}.`, "success");
    } catch (error) {
      show("analyse-result", describe(error), "error");
    } finally {
      busy(form, false);
    }
  });

  $("summarise-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    busy(form, true);
    try {
      const job = await api("/api/summarise", {
        method: "POST", idempotent: true, body: { text: $("summarise-text").value },
      });
      rememberJob(job.job_id);
      const box = $("summarise-result");
      box.className = "result success";
      box.replaceChildren(
        document.createTextNode("Job created: "),
        Object.assign(document.createElement("code"), { id: "summarise-job-id", textContent: job.job_id }),
        document.createTextNode(`. Credits remaining: ${job.credits_remaining}. `),
      );
      const watch = Object.assign(document.createElement("button"), {
        type: "button", className: "button", textContent: "Watch it in the Jobs tab",
      });
      watch.addEventListener("click", () => { watchJob(job.job_id); });
      box.append(watch);
      $("job-id").value = job.job_id;
      state.polledJob = job.job_id; // the Jobs tab polls it as soon as it is opened
    } catch (error) {
      show("summarise-result", describe(error), "error");
    } finally {
      busy(form, false);
    }
  });

  $("job-form").addEventListener("submit", (event) => {
    event.preventDefault();
    watchJob($("job-id").value.trim());
  });

  for (const counter of document.querySelectorAll("[data-counts]")) {
    const input = $(counter.dataset.counts);
    const update = () => { counter.textContent = `${[...input.value].length} / 2000 characters`; };
    input.addEventListener("input", update);
    update();
  }

  $("copy-token").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(currentToken() || "");
      setText("copy-status", "Copied.");
    } catch (_) {
      setText("copy-status", "The browser did not allow copying.");
    }
  });

  $("logout").addEventListener("click", () => logOut("You are logged out."));
}

function describe(error) {
  if (error.code === "insufficient_credits") {
    return `${error.message} Balance: ${error.detail.balance}, required: ${error.detail.required}.`;
  }
  return error.message;
}

// ---- jobs ---------------------------------------------------------------------

function sessionJobs() {
  try { return JSON.parse(sessionStorage.getItem(JOBS_KEY) || "[]"); } catch (_) { return []; }
}

function rememberJob(jobId, status = "pending") {
  const jobs = sessionJobs().filter((j) => j.id !== jobId);
  jobs.unshift({ id: jobId, status });
  sessionStorage.setItem(JOBS_KEY, JSON.stringify(jobs.slice(0, 20)));
  renderJobList();
}

function renderJobList() {
  const list = $("job-list");
  list.replaceChildren();
  for (const job of sessionJobs()) {
    const item = document.createElement("li");
    const link = Object.assign(document.createElement("button"), {
      type: "button", className: "link", textContent: job.id,
    });
    link.addEventListener("click", () => watchJob(job.id));
    const badge = Object.assign(document.createElement("span"), {
      className: `badge ${job.status}`, textContent: job.status,
    });
    item.append(link, " ", badge);
    list.append(item);
  }
  $("no-jobs").hidden = sessionJobs().length > 0;
}

function watchJob(jobId) {
  $("job-id").value = jobId;
  state.polledJob = jobId;
  selectTab("jobs", false);
}

function stopPolling() {
  if (state.pollTimer) clearTimeout(state.pollTimer);
  state.pollTimer = null;
}

async function pollJob(jobId) {
  stopPolling();
  state.polledJob = jobId;
  show("job-error", "");
  let job;
  try {
    job = await api(`/api/jobs/${encodeURIComponent(jobId)}`);
  } catch (error) {
    $("job").hidden = true;
    show("job-error", error.message, "error");
    state.polledJob = null;
    return;
  }
  if (state.polledJob !== jobId) return; // another job was asked for meanwhile
  $("job").hidden = false;
  setText("job-show-id", job.job_id);
  setText("job-status", job.status);
  $("job-status").className = `badge ${job.status}`;
  setText("job-created", when(job.created_at));
  const output = job.status === "completed" ? job.result : job.error;
  $("job-output-title").hidden = $("job-output").hidden = !DONE.has(job.status);
  setText("job-output-title", job.status === "completed" ? "Summary" : "Why it failed");
  setText("job-output", output);
  if (sessionJobs().some((j) => j.id === job.job_id)) rememberJob(job.job_id, job.status);
  if (!DONE.has(job.status)) {
    state.pollTimer = setTimeout(() => pollJob(jobId), POLL_MS);
  }
}

// ---- start --------------------------------------------------------------------

async function completeLogin() {
  // The browser is on /auth/callback?code=…&state=…: ask the same URL for JSON.
  $("welcome").hidden = true;
  $("signing-in").hidden = false;
  const query = location.search;
  history.replaceState(null, "", "/");
  try {
    saveToken(await api(`/auth/callback${query}`));
  } catch (error) {
    showWelcome();
    flash(`Login failed: ${error.message}`);
    return;
  }
  await showConsole();
}

function start() {
  setText("base-url", location.origin);
  wireTabs();
  wireForms();
  if (location.pathname === "/auth/callback") {
    completeLogin();
  } else if (currentToken()) {
    showConsole();
  } else {
    showWelcome();
  }
}

document.addEventListener("DOMContentLoaded", start);
