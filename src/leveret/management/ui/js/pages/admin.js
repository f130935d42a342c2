// Admin: users (add, tags, password, delete), virtual hosts (add, delete), permissions, and
// definitions (export as a download, import from a file).

import * as api from "../api.js";
import { dl, field, fill, form, h, link, messageArea, section, select, table } from "../dom.js";
import { num } from "../format.js";

const TAGS = ["administrator", "monitoring", "policymaker", "management", "impersonator"];

function adminNav(current) {
  const items = [["Users", "#/users", "users"], ["Virtual hosts", "#/vhosts", "vhosts"],
    ["Definitions", "#/definitions", "definitions"]];
  return h("nav", { class: "subnav", "aria-label": "Admin" }, h("ul", {},
    items.map(([label, href, key]) => h("li", {},
      h("a", { href, "aria-current": key === current ? "page" : null }, label)))));
}

function userHref(name) {
  return `#/users/${api.enc(name)}`;
}

function vhostHref(name) {
  return `#/vhosts/${api.enc(name)}`;
}

function tagsInput(value = "") {
  const input = h("input", { name: "tags", value, spellcheck: "false" });
  const quick = h("div", { class: "tag-buttons", role: "group", "aria-label": "Add a tag" },
    TAGS.map((tag) => h("button", { type: "button", class: "small", onclick: () => {
      const tags = input.value.split(",").map((t) => t.trim()).filter(Boolean);
      if (!tags.includes(tag)) tags.push(tag);
      input.value = tags.join(", ");
      input.focus();
    } }, tag)));
  return [field("Tags", input, "Comma-separated: administrator, monitoring, policymaker, management; none for AMQP only"), quick];
}

function splitTags(text) {
  return text.split(",").map((t) => t.trim()).filter(Boolean);
}

// ---------------------------------------------------------------------- users

export function users(main, _params, ctx) {
  ctx.title("Users");
  const listEl = h("div");
  const note = messageArea();

  async function refresh() {
    const [all, permissions] = await Promise.all([api.get("/users"), api.get("/permissions")]);
    const access = {};
    for (const p of permissions) (access[p.user] = access[p.user] || []).push(p.vhost);
    fill(listEl, table({
      caption: `Users (${all.length})`,
      columns: [
        { key: "name", label: "Name",
          render: (u) => link(userHref(u.name), u.name, { "data-focus": `u-${u.name}` }) },
        { key: "tags", label: "Tags", render: (u) => (u.tags || []).join(", ") || "none" },
        { key: "vhosts", label: "Can access virtual hosts",
          render: (u) => (access[u.name] || []).sort().join(", ") || "No access" },
        { key: "password", label: "Has password", render: (u) => (u.password_hash ? "yes" : "no") },
      ],
      rows: all,
    }));
  }

  const addForm = form({ class: "grid-form" }, async (data, el) => {
    note.clear();
    const name = data.username.trim();
    if (!name) {
      note.show("A user needs a name.", true);
      return;
    }
    if (data.password !== data.password_confirm) {
      note.show("The two passwords differ.", true);
      return;
    }
    try {
      await api.put(`/users/${api.enc(name)}`, { password: data.password, tags: splitTags(data.tags).join(",") });
      note.show(`User ${name} added. Give it permissions on its page.`);
      el.reset();
      await refresh();
    } catch (err) {
      note.show(api.describe(err), true);
    }
  },
  field("Username", h("input", { name: "username", required: true, autocomplete: "off",
    spellcheck: "false" })),
  field("Password", h("input", { name: "password", type: "password", autocomplete: "new-password" })),
  field("Password (again)", h("input", { name: "password_confirm", type: "password",
    autocomplete: "new-password" })),
  tagsInput(),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Add user")),
  note);

  fill(main, h("h1", {}, "Admin: users"), adminNav("users"), section("All users", listEl),
    section("Add a user", addForm));
  return { refresh };
}

export function user(main, params, ctx) {
  const { name } = params;
  ctx.title(`User ${name}`);
  const overview = h("div");
  const perms = h("div");
  const permNote = messageArea();
  const note = messageArea();
  let updateForm = h("div");
  let first = true;

  async function refresh() {
    let u;
    try {
      u = await api.get(`/users/${api.enc(name)}`);
    } catch (err) {
      if (err.status === 404) {
        fill(main, h("h1", {}, `User ${name}`), h("p", { role: "alert" }, "There is no such user. ",
          link("#/users", "All users")));
        return;
      }
      throw err;
    }
    const permissions = await api.get(`/users/${api.enc(name)}/permissions`);
    fill(overview, dl([["Tags", (u.tags || []).join(", ") || "none"],
      ["Can log in with a password", u.password_hash ? "yes" : "no"]]));
    fill(perms, permissionsTable(permissions, "vhost", refresh, permNote));
    if (first) {
      first = false;
      const fresh = updateUserForm(name, u, note, refresh);
      updateForm.replaceWith(fresh);
      updateForm = fresh;
    }
  }

  const setForm = setPermissionForm({
    fixed: { user: name }, choices: () => ctx.vhosts(), choiceName: "vhost",
    choiceLabel: "Virtual host", note: permNote, onChange: refresh,
  });
  const remove = h("button", { type: "button", class: "danger", onclick: async () => {
    if (!window.confirm(`Delete user ${name}?`)) return;
    try {
      await api.del(`/users/${api.enc(name)}`);
      ctx.announce(`User ${name} deleted.`);
      ctx.navigate("#/users");
    } catch (err) {
      note.show(api.describe(err), true);
    }
  } }, "Delete user");

  fill(main, h("h1", {}, h("span", { class: "kind" }, "User "), name), adminNav("users"),
    section("Overview", overview),
    section("Permissions", permNote, perms, h("h3", {}, "Set permission"), setForm),
    section("Update this user", updateForm, note),
    section("Delete this user", h("div", { class: "actions" }, remove)));
  return { refresh };
}

function updateUserForm(name, u, note, refresh) {
  return form({ class: "grid-form" }, async (data, el) => {
    note.clear();
    if (data.password !== data.password_confirm) {
      note.show("The two passwords differ.", true);
      return;
    }
    const body = { tags: splitTags(data.tags).join(",") };
    if (data.password) body.password = data.password;
    else if (u.password_hash) body.password_hash = u.password_hash; // keep it
    try {
      await api.put(`/users/${api.enc(name)}`, body);
      note.show(`User ${name} updated.`);
      el.querySelector("[name=password]").value = "";
      el.querySelector("[name=password_confirm]").value = "";
      await refresh();
    } catch (err) {
      note.show(api.describe(err), true);
    }
  },
  field("New password", h("input", { name: "password", type: "password", autocomplete: "new-password" }),
    "Leave empty to keep the password"),
  field("New password (again)", h("input", { name: "password_confirm", type: "password",
    autocomplete: "new-password" })),
  tagsInput((u.tags || []).join(", ")),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Update user")));
}

function permissionsTable(permissions, show, onChange, note) {
  return table({
    caption: "Permissions",
    columns: [
      show === "vhost"
        ? { key: "vhost", label: "Virtual host", render: (p) => link(vhostHref(p.vhost), p.vhost) }
        : { key: "user", label: "User", render: (p) => link(userHref(p.user), p.user) },
      { key: "configure", label: "Configure regexp", render: (p) => h("code", {}, p.configure) },
      { key: "write", label: "Write regexp", render: (p) => h("code", {}, p.write) },
      { key: "read", label: "Read regexp", render: (p) => h("code", {}, p.read) },
      { key: "clear", label: "Action", render: (p) => h("button", {
        type: "button", class: "danger small", "data-focus": `clear-${p.vhost}-${p.user}`,
        "aria-label": `Clear permissions of ${p.user} on ${p.vhost}`,
        onclick: async () => {
          try {
            await api.del(`/permissions/${api.enc(p.vhost)}/${api.enc(p.user)}`);
            note.show(`Permissions of ${p.user} on ${p.vhost} cleared.`);
            await onChange();
          } catch (err) {
            note.show(api.describe(err), true);
          }
        },
      }, "Clear") },
    ],
    rows: permissions,
    empty: "No permissions.",
  });
}

function setPermissionForm({ fixed, choices, choiceName, choiceLabel, note, onChange }) {
  const choice = select(choiceName, choices());
  const el = form({ class: "grid-form" }, async (data) => {
    note.clear();
    const vhost = fixed.vhost ?? data.vhost;
    const userName = fixed.user ?? data.user;
    try {
      await api.put(`/permissions/${api.enc(vhost)}/${api.enc(userName)}`,
        { configure: data.configure, write: data.write, read: data.read });
      note.show(`Permissions of ${userName} on ${vhost} set.`);
      await onChange();
    } catch (err) {
      note.show(api.describe(err), true);
    }
  },
  field(choiceLabel, choice),
  field("Configure regexp", h("input", { name: "configure", value: ".*", spellcheck: "false" })),
  field("Write regexp", h("input", { name: "write", value: ".*", spellcheck: "false" })),
  field("Read regexp", h("input", { name: "read", value: ".*", spellcheck: "false" })),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Set permission")));
  el.updateChoices = () => {
    const current = choice.value;
    fill(choice, choices().map((c) => h("option", { value: c, selected: c === current }, c)));
  };
  return el;
}

// ---------------------------------------------------------------------- virtual hosts

export function vhosts(main, _params, ctx) {
  ctx.title("Virtual hosts");
  const listEl = h("div");
  const note = messageArea();

  async function refresh() {
    const all = await api.get("/vhosts");
    fill(listEl, table({
      caption: `Virtual hosts (${all.length})`,
      columns: [
        { key: "name", label: "Name",
          render: (v) => link(vhostHref(v.name), v.name, { "data-focus": `v-${v.name}` }) },
        { key: "description", label: "Description" },
        { key: "messages_ready", label: "Ready", num: true, render: (v) => num(v.messages_ready || 0) },
        { key: "messages_unacknowledged", label: "Unacked", num: true,
          render: (v) => num(v.messages_unacknowledged || 0) },
        { key: "messages", label: "Total", num: true, render: (v) => num(v.messages || 0) },
      ],
      rows: all,
    }));
  }

  const addForm = form({ class: "grid-form" }, async (data, el) => {
    note.clear();
    const name = data.name.trim();
    if (!name) {
      note.show("A virtual host needs a name.", true);
      return;
    }
    try {
      await api.put(`/vhosts/${api.enc(name)}`, { description: data.description,
        tags: data.tags });
      note.show(`Virtual host ${name} added.`);
      el.reset();
      await ctx.reloadVhosts();
      await refresh();
    } catch (err) {
      note.show(api.describe(err), true);
    }
  },
  field("Name", h("input", { name: "name", required: true, spellcheck: "false" })),
  field("Description", h("input", { name: "description" })),
  field("Tags", h("input", { name: "tags" }), "Comma-separated"),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Add virtual host")),
  note);

  fill(main, h("h1", {}, "Admin: virtual hosts"), adminNav("vhosts"),
    section("All virtual hosts", listEl), section("Add a virtual host", addForm));
  return { refresh };
}

export function vhost(main, params, ctx) {
  const { name } = params;
  ctx.title(`Virtual host ${name}`);
  const overview = h("div");
  const perms = h("div");
  const permNote = messageArea();
  const note = messageArea();
  let userNames = [];
  const setForm = setPermissionForm({
    fixed: { vhost: name }, choices: () => userNames, choiceName: "user", choiceLabel: "User",
    note: permNote, onChange: () => refresh(),
  });

  async function refresh() {
    let v;
    try {
      v = await api.get(`/vhosts/${api.enc(name)}`);
    } catch (err) {
      if (err.status === 404) {
        fill(main, h("h1", {}, `Virtual host ${name}`), h("p", { role: "alert" },
          "There is no such virtual host. ", link("#/vhosts", "All virtual hosts")));
        return;
      }
      throw err;
    }
    const [permissions, allUsers] = await Promise.all([
      api.get(`/vhosts/${api.enc(name)}/permissions`), api.get("/users")]);
    const names = allUsers.map((u) => u.name).sort();
    if (names.join("\n") !== userNames.join("\n")) {
      userNames = names;
      setForm.updateChoices();
    }
    fill(overview, dl([
      ["Description", v.description || ""],
      ["Tags", (v.tags || []).join(", ")],
      ["Messages ready", num(v.messages_ready || 0)],
      ["Messages unacked", num(v.messages_unacknowledged || 0)],
    ]));
    fill(perms, permissionsTable(permissions, "user", refresh, permNote));
  }

  const remove = h("button", { type: "button", class: "danger", onclick: async () => {
    if (!window.confirm(`Delete virtual host ${name} with all its queues, exchanges and messages?`)) {
      return;
    }
    try {
      await api.del(`/vhosts/${api.enc(name)}`);
      ctx.announce(`Virtual host ${name} deleted.`);
      await ctx.reloadVhosts();
      ctx.navigate("#/vhosts");
    } catch (err) {
      note.show(api.describe(err), true);
    }
  } }, "Delete virtual host");

  fill(main, h("h1", {}, h("span", { class: "kind" }, "Virtual host "), name), adminNav("vhosts"),
    section("Overview", overview),
    section("Permissions", permNote, perms, h("h3", {}, "Set permission"), setForm),
    section("Delete this virtual host", note, h("div", { class: "actions" }, remove)));
  return { refresh };
}

// ---------------------------------------------------------------------- definitions

export function definitions(main, _params, ctx) {
  ctx.title("Definitions");
  const exportNote = messageArea();
  const importNote = messageArea();
  const scope = () => [["", "All (the whole broker)"], ...ctx.vhosts().map((v) => [v, v])];

  const exportForm = form({ class: "grid-form" }, async (data) => {
    exportNote.clear();
    const path = data.vhost ? `/definitions/${api.enc(data.vhost)}` : "/definitions";
    try {
      const defs = await api.get(path);
      const blob = new Blob([`${JSON.stringify(defs, null, 2)}\n`], { type: "application/json" });
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: data.filename || "definitions.json", hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      exportNote.show(`Definitions downloaded as ${data.filename}.`);
    } catch (err) {
      exportNote.show(api.describe(err), true);
    }
  },
  field("Virtual host", select("vhost", scope(), "")),
  field("File name", h("input", { name: "filename", value: defaultFilename(), spellcheck: "false" })),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Download broker definitions")),
  exportNote);

  const fileInput = h("input", { type: "file", name: "file", accept: ".json,application/json", required: true });
  const importForm = form({ class: "grid-form" }, async (data) => {
    importNote.clear();
    const file = fileInput.files[0];
    if (!file) {
      importNote.show("Choose a definitions file first.", true);
      return;
    }
    const text = await file.text();
    try {
      JSON.parse(text);
    } catch (err) {
      importNote.show(`${file.name} is not JSON: ${err.message}`, true);
      return;
    }
    const path = data.vhost ? `/definitions/${api.enc(data.vhost)}` : "/definitions";
    try {
      await api.request("POST", path, { body: text });
      importNote.show(`Definitions from ${file.name} imported.`);
      await ctx.reloadVhosts();
    } catch (err) {
      importNote.show(api.describe(err), true);
    }
  },
  field("Definitions file", fileInput, "A JSON export of Leveret or RabbitMQ"),
  field("Into virtual host", select("vhost", scope(), "")),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Upload broker definitions")),
  importNote);

  fill(main, h("h1", {}, "Admin: definitions"), adminNav("definitions"),
    section("Export definitions", h("p", {}, "Users, virtual hosts, permissions, queues, ",
      "exchanges, bindings, parameters and policies, as RabbitMQ exports them."), exportForm),
    section("Import definitions", h("p", {}, "Adds what the file defines; what exists stays."),
      importForm));
  return { refresh: async () => {} };
}

function defaultFilename() {
  const d = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `leveret_${location.hostname || "broker"}_${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}.json`;
}
