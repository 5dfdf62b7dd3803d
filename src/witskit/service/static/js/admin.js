// User administration (/admin): users and API keys, for holders of users:admin. The page is
// only built for them; the API refuses everyone else whatever the page does.

import { ApiError, api } from "./api.js";
import { h } from "./dom.js";

const ROLES = ["viewer", "operator", "admin", "super_admin"];

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function status(el, message, level = "ok") {
  el.textContent = message;
  el.dataset.level = level;
  el.hidden = !message;
}

function roleBoxes(prefix, checked = ["viewer"]) {
  return h(
    "fieldset",
    { class: "roles" },
    h("legend", {}, "Roles"),
    ROLES.map((role) =>
      h(
        "label",
        { class: "check" },
        h("input", { type: "checkbox", name: "role", value: role, id: `${prefix}-${role}`, checked: checked.includes(role) }),
        role,
      ),
    ),
  );
}

function chosenRoles(form) {
  return [...form.querySelectorAll('input[name="role"]:checked')].map((input) => input.value);
}

async function usersSection(message) {
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "data-table", "aria-label": "Users" },
    h("thead", {}, h("tr", {}, ["User", "Roles", "Active", "Last sign-in", ""].map((c) => h("th", { scope: "col" }, c)))),
    tbody,
  );
  const refresh = async () => {
    tbody.replaceChildren();
    let users;
    try {
      users = await api.get("/users");
    } catch (e) {
      status(message, e.message, "bad");
      return;
    }
    for (const user of users) {
      const roles = h(
        "select",
        { "aria-label": `Role of ${user.username}` },
        ROLES.map((role) => h("option", { value: role, selected: user.roles.includes(role) }, role)),
      );
      roles.addEventListener("change", async () => {
        try {
          await api.patch(`/users/${encodeURIComponent(user.username)}`, { roles: [roles.value] });
          status(message, `${user.username} is now ${roles.value}.`);
        } catch (e) {
          status(message, e.message, "bad");
        }
        refresh();
      });
      const toggle = h(
        "button",
        { type: "button", class: "ghost" },
        user.is_active ? "Disable" : "Enable",
      );
      toggle.addEventListener("click", async () => {
        try {
          await api.patch(`/users/${encodeURIComponent(user.username)}`, { is_active: !user.is_active });
          status(message, `${user.username} ${user.is_active ? "disabled" : "enabled"}.`);
        } catch (e) {
          status(message, e.message, "bad");
        }
        refresh();
      });
      tbody.append(
        h(
          "tr",
          { dataset: { user: user.username } },
          h("td", {}, user.username),
          h("td", {}, roles),
          h("td", {}, user.is_active ? "yes" : "no"),
          h("td", {}, when(user.last_login_at)),
          h("td", {}, toggle),
        ),
      );
    }
  };
  const form = h(
    "form",
    { class: "admin-form", "aria-label": "Add a user" },
    h("h3", {}, "Add a user"),
    h("label", { for: "new-user" }, "User name"),
    h("input", { id: "new-user", name: "username", required: true, autocomplete: "off", pattern: "[A-Za-z0-9][A-Za-z0-9_.@\\-]*" }),
    h("label", { for: "new-password" }, "Password (12 characters or more)"),
    h("input", { id: "new-password", name: "password", type: "password", required: true, minlength: "12", autocomplete: "new-password" }),
    roleBoxes("new-user-role"),
    h("button", { type: "submit", class: "primary" }, "Add user"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = form.elements.username.value.trim();
    try {
      await api.post("/users", { username, password: form.elements.password.value, roles: chosenRoles(form) });
      status(message, `User ${username} added.`);
      form.reset();
    } catch (e) {
      status(message, e instanceof ApiError && e.status === 409 ? `The name ${username} is taken.` : e.message, "bad");
    }
    refresh();
  });
  await refresh();
  return h("section", { class: "panel admin-section" }, h("h2", {}, "Users"), table, form);
}

async function keysSection(message) {
  const tbody = h("tbody");
  const created = h("div", { class: "key-created", role: "status", hidden: true });
  const table = h(
    "table",
    { class: "data-table", "aria-label": "API keys" },
    h("thead", {}, h("tr", {}, ["Name", "Roles", "Created", "Expires", "Last used", "State", ""].map((c) => h("th", { scope: "col" }, c)))),
    tbody,
  );
  const refresh = async () => {
    tbody.replaceChildren();
    let keys;
    try {
      keys = await api.get("/api-keys");
    } catch (e) {
      status(message, e.message, "bad");
      return;
    }
    for (const key of keys) {
      const revoke = key.revoked_at
        ? ""
        : h("button", { type: "button", class: "ghost danger" }, "Revoke");
      if (revoke) {
        revoke.addEventListener("click", async () => {
          if (!window.confirm(`Revoke the API key ${key.name}? Screens using it stop at once.`)) return;
          try {
            await api.delete(`/api-keys/${encodeURIComponent(key.key_id)}`);
            status(message, `Key ${key.name} revoked.`);
          } catch (e) {
            status(message, e.message, "bad");
          }
          refresh();
        });
      }
      tbody.append(
        h(
          "tr",
          {},
          h("td", {}, key.name),
          h("td", {}, key.roles.join(", ")),
          h("td", {}, when(key.created_at)),
          h("td", {}, when(key.expires_at)),
          h("td", {}, when(key.last_used_at)),
          h("td", {}, key.revoked_at ? "revoked" : "active"),
          h("td", {}, revoke),
        ),
      );
    }
  };
  const form = h(
    "form",
    { class: "admin-form", "aria-label": "Create an API key" },
    h("h3", {}, "Create an API key (for a wall screen or a script)"),
    h("label", { for: "new-key-name" }, "Name"),
    h("input", { id: "new-key-name", name: "name", required: true, maxlength: "100", autocomplete: "off" }),
    h("label", { for: "new-key-days" }, "Expires after (days, empty: never)"),
    h("input", { id: "new-key-days", name: "days", type: "number", min: "1", max: "3650", inputmode: "numeric" }),
    roleBoxes("new-key-role"),
    h("button", { type: "submit", class: "primary" }, "Create key"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const days = form.elements.days.value ? Number(form.elements.days.value) : null;
    try {
      const key = await api.post("/api-keys", { name: form.elements.name.value.trim(), roles: chosenRoles(form), expires_in_days: days });
      const url = `${window.location.origin}/#key=${encodeURIComponent(key.key)}`;
      const field = h("input", { class: "key-url", readonly: true, value: url, "aria-label": "Wall-screen address with the key" });
      const copy = h("button", { type: "button" }, "Copy");
      copy.addEventListener("click", async () => {
        field.select();
        try {
          await navigator.clipboard.writeText(url);
          copy.textContent = "Copied";
        } catch {
          copy.textContent = "Select and copy";
        }
      });
      created.replaceChildren(
        h("p", {}, h("strong", {}, `Key ${key.name} created. `), "It is shown only now: store it, or open this address on the wall screen:"),
        h("div", { class: "key-line" }, field, copy),
      );
      created.hidden = false;
      form.reset();
    } catch (e) {
      status(message, e.message, "bad");
    }
    refresh();
  });
  await refresh();
  return h("section", { class: "panel admin-section" }, h("h2", {}, "API keys"), created, table, form);
}

/** Builds the administration page into `root` (again on every visit, so it is current). */
export async function renderAdmin(root) {
  const message = h("p", { class: "admin-message", role: "status", hidden: true });
  root.replaceChildren(h("h2", { class: "visually-hidden" }, "Administration"), message);
  const [users, keys] = await Promise.all([usersSection(message), keysSection(message)]);
  root.append(users, keys);
}
