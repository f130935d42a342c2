// The application: login, the header and navigation, hash routes (RabbitMQ's own URL shapes:
// #/queues/%2F/name), and the refresh loop that updates the page every few seconds.

import * as api from "./api.js";
import { field, fill, form, h, messageArea } from "./dom.js";
import * as history from "./history.js";

const SECTIONS = [
  ["Overview", "#/", ""],
  ["Connections", "#/connections", "connections"],
  ["Channels", "#/channels", "channels"],
  ["Exchanges", "#/exchanges", "exchanges"],
  ["Queues", "#/queues", "queues"],
  ["Admin", "#/users", "admin"],
];

// path pattern -> [section, module, export]; ":x" parts are parameters
const ROUTES = [
  ["", "", "overview", "overview"],
  ["connections", "connections", "connections", "list"],
  ["connections/:name", "connections", "connections", "show"],
  ["channels", "channels", "channels", "list"],
  ["channels/:name", "channels", "channels", "show"],
  ["exchanges", "exchanges", "exchanges", "list"],
  ["exchanges/:vhost/:name", "exchanges", "exchange", "show"],
  ["queues", "queues", "queues", "list"],
  ["queues/:vhost/:name", "queues", "queue", "show"],
  ["users", "admin", "admin", "users"],
  ["users/:name", "admin", "admin", "user"],
  ["vhosts", "admin", "admin", "vhosts"],
  ["vhosts/:name", "admin", "admin", "vhost"],
  ["definitions", "admin", "admin", "definitions"],
];

const REFRESH_CHOICES = [[0, "Off"], [5, "every 5 seconds"], [10, "every 10 seconds"],
  [30, "every 30 seconds"]];

const state = {
  user: null,
  vhosts: [],
  vhost: sessionStorage.getItem("leveret.vhost") || "",
  interval: Number(localStorage.getItem("leveret.refresh") ?? 5),
  page: null,
  routed: false,
  timer: null,
  generation: 0,
};

const els = {};

/** What every page gets. */
const ctx = {
  vhost: () => state.vhost,
  vhosts: () => state.vhosts,
  user: () => state.user,
  navigate(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  title(text) {
    document.title = `${text} - Leveret Management`;
  },
  announce(text) {
    els.announce.textContent = "";
    // a fresh text node so the same words are announced again
    requestAnimationFrame(() => { els.announce.textContent = text; });
  },
  async reloadVhosts() {
    await loadVhosts();
  },
};

function parseHash() {
  const raw = location.hash.startsWith("#/") ? location.hash.slice(2) : "";
  const parts = raw === "" ? [] : raw.split("/").map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  for (const [pattern, section, module, name] of ROUTES) {
    const want = pattern === "" ? [] : pattern.split("/");
    if (want.length !== parts.length) continue;
    const params = {};
    let ok = true;
    want.forEach((w, i) => {
      if (w.startsWith(":")) params[w.slice(1)] = parts[i];
      else if (w !== parts[i]) ok = false;
    });
    if (ok) return { section, module, name, params };
  }
  return null;
}

async function route() {
  if (!state.user) return;
  const generation = ++state.generation;
  stopTimer();
  if (state.page && state.page.unmount) state.page.unmount();
  state.page = null;
  const target = parseHash();
  for (const a of els.nav.querySelectorAll("a")) {
    if (target && a.dataset.section === target.section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const main = els.main;
  if (!target) {
    ctx.title("Not found");
    fill(main, h("h1", { tabindex: "-1" }, "Not found"),
      h("p", {}, "There is no such page. ", h("a", { href: "#/" }, "Go to the overview.")));
    main.querySelector("h1").focus();
    return;
  }
  let mod;
  try {
    mod = await import(`./pages/${target.module}.js`);
  } catch (err) {
    fill(main, h("h1", { tabindex: "-1" }, "This page could not be loaded"),
      h("p", { role: "alert" }, `${err.message}. Reload the page to try again.`));
    return;
  }
  if (generation !== state.generation) return; // another navigation won
  fill(main);
  state.page = mod[target.name](main, target.params, ctx);
  await refresh(true);
  const heading = main.querySelector("h1");
  if (heading) heading.setAttribute("tabindex", "-1");
  // after a navigation the new page's heading takes focus (and is read out); on the first
  // page focus stays at the top, where the skip link is
  if (heading && state.routed) heading.focus();
  state.routed = true;
}

async function refresh(first = false) {
  const generation = state.generation;
  const page = state.page;
  if (!page) return;
  try {
    await page.refresh(first);
    els.updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    els.updated.classList.remove("error");
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 401) return;
    els.updated.textContent = `Update failed: ${api.describe(err)}`;
    els.updated.classList.add("error");
  }
  if (page.sample !== true) sampleOverview();
  if (generation === state.generation) schedule();
}

async function sampleOverview() {
  // the overview chart covers the last minutes even when another page was open meanwhile
  try {
    history.record(await api.get("/overview"));
  } catch {
    // the page's own refresh reports errors
  }
}

function schedule() {
  stopTimer();
  if (state.interval > 0) {
    state.timer = setTimeout(() => {
      if (document.hidden) schedule();
      else refresh();
    }, state.interval * 1000);
  }
}

function stopTimer() {
  if (state.timer) clearTimeout(state.timer);
  state.timer = null;
}

async function loadVhosts() {
  try {
    const vhosts = await api.get("/vhosts");
    state.vhosts = vhosts.map((v) => v.name).sort();
  } catch {
    state.vhosts = [];
  }
  if (state.vhost && !state.vhosts.includes(state.vhost)) setVhost("");
  const select = els.vhostSelect;
  fill(select, h("option", { value: "" }, "All"),
    state.vhosts.map((v) => h("option", { value: v, selected: v === state.vhost }, v)));
}

function setVhost(vhost) {
  state.vhost = vhost;
  sessionStorage.setItem("leveret.vhost", vhost);
}

// ---------------------------------------------------------------------- login and layout

function showLogin(message) {
  stopTimer();
  state.user = null;
  state.page = null;
  state.generation += 1;
  els.nav.hidden = true;
  els.session.hidden = true;
  ctx.title("Login");
  const note = messageArea();
  const loginForm = form({ class: "login", "aria-labelledby": "login-title" }, async (data) => {
    note.clear();
    try {
      const user = await api.tryLogin(data.username, data.password);
      api.setCredentials(data.username, data.password);
      await start(user, true);
    } catch (err) {
      let text = api.describe(err);
      if (err instanceof api.ApiError && err.status === 401) {
        text = !err.reason || err.reason === "Login failed"
          ? "Login failed: wrong username or password."
          : `Login failed: ${err.reason}.`; // "Not management user": a user without the tag
      }
      note.show(text, true);
      loginForm.querySelector("input[name=password]").select();
    }
  },
  h("h1", { id: "login-title" }, "Log in to Leveret"),
  field("Username", h("input", { name: "username", autocomplete: "username", required: true,
    autocapitalize: "none", spellcheck: "false" })),
  field("Password", h("input", { name: "password", type: "password",
    autocomplete: "current-password", required: true })),
  h("button", { type: "submit", class: "primary" }, "Login"),
  note);
  fill(els.main, loginForm);
  if (message) note.show(message, true);
  loginForm.querySelector("input[name=username]").focus();
}

async function start(user, fromLogin = false) {
  state.user = user;
  state.routed = fromLogin; // after the login form, focus moves to the page's heading
  els.nav.hidden = false;
  els.session.hidden = false;
  els.userName.textContent = user.name;
  // as RabbitMQ's page: Admin is for administrators (the API refuses the others anyway)
  const admin = els.nav.querySelector("a[data-section=admin]").parentElement;
  admin.hidden = !(user.tags || []).includes("administrator");
  try {
    const overview = await api.get("/overview");
    els.cluster.textContent = overview.cluster_name;
    els.version.textContent = `Leveret ${overview.product_version} · RabbitMQ ${overview.rabbitmq_version} API`;
    history.record(overview);
  } catch {
    els.cluster.textContent = "";
  }
  await loadVhosts();
  route();
}

function logout() {
  api.clearCredentials();
  history.clear();
  showLogin();
  ctx.announce("Logged out.");
}

function layout() {
  const body = document.body;
  els.announce = h("div", { class: "visually-hidden", role: "status", "aria-live": "polite" });
  els.main = h("main", { id: "main", tabindex: "-1" });
  els.nav = h("nav", { "aria-label": "Main", hidden: true },
    h("ul", {}, SECTIONS.map(([label, href, section]) =>
      h("li", {}, h("a", { href, dataset: { section } }, label)))));
  els.userName = h("span", { class: "value" });
  els.cluster = h("span", { class: "value" });
  els.version = h("span", { class: "version" });
  els.updated = h("span", { class: "updated" });
  els.vhostSelect = h("select", { id: "vhost-select", onchange: (e) => {
    setVhost(e.target.value);
    refresh();
  } });
  const refreshSelect = h("select", { id: "refresh-select", onchange: (e) => {
    state.interval = Number(e.target.value);
    localStorage.setItem("leveret.refresh", String(state.interval));
    schedule();
  } }, REFRESH_CHOICES.map(([v, text]) =>
    h("option", { value: v, selected: v === state.interval }, text)));
  els.session = h("div", { class: "session", hidden: true },
    h("span", {}, "Cluster ", els.cluster),
    h("span", {}, "User ", els.userName),
    h("span", { class: "control" }, h("label", { for: "vhost-select" }, "Virtual host"),
      els.vhostSelect),
    h("span", { class: "control" }, h("label", { for: "refresh-select" }, "Refresh"),
      refreshSelect),
    h("button", { type: "button", class: "link", onclick: () => refresh() }, "Refresh now"),
    els.updated,
    h("button", { type: "button", onclick: logout }, "Log out"));
  const skip = h("a", { class: "skip", href: "#main", onclick: (e) => {
    e.preventDefault();
    els.main.focus();
  } }, "Skip to main content");
  const header = h("header", { class: "banner" },
    h("div", { class: "brand" }, h("img", { src: "img/leveret.svg", alt: "", width: 32, height: 32 }),
      h("span", { class: "name" }, "Leveret"), h("span", { class: "sub" }, "Management"),
      els.version),
    els.session);
  body.replaceChildren(skip, header, els.nav, els.main, els.announce);
}

function boot() {
  layout();
  api.onUnauthorized((err) => {
    api.clearCredentials();
    showLogin(`Please log in again (${err.reason || "not authorised"}).`);
  });
  window.addEventListener("hashchange", () => route());
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.page && !state.timer && state.interval > 0) refresh();
  });
  if (api.loggedIn()) {
    api.get("/whoami").then(start).catch((err) => {
      if (!(err instanceof api.ApiError && err.status === 401)) showLogin(api.describe(err));
    });
  } else {
    showLogin();
  }
}

boot();
