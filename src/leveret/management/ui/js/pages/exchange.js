// One exchange: its figures, bindings from and to it (add, remove), publish a message, delete.

import * as api from "../api.js";
import { dl, fill, h, link, messageArea, section } from "../dom.js";
import { exchangeFeatures, statRate, value, yesNo } from "../format.js";
import { addBindingForm, bindingsTable, publishForm } from "./shared.js";

export function show(main, params, ctx) {
  const { vhost } = params;
  // RabbitMQ's pages and API call the default exchange "amq.default"
  const name = params.name === "amq.default" ? "" : params.name;
  const shown = name === "" ? "(AMQP default)" : name;
  const base = `/exchanges/${api.enc(vhost)}/${api.enc(name === "" ? "amq.default" : name)}`;
  ctx.title(`Exchange ${shown}`);
  const overview = h("div");
  const from = h("div");
  const to = h("div");
  const note = messageArea();
  const actionNote = messageArea();

  async function refresh() {
    let x;
    try {
      x = await api.get(base);
    } catch (err) {
      if (err.status === 404) {
        fill(main, h("h1", {}, `Exchange ${shown}`),
          h("p", { role: "alert" }, `There is no exchange ${shown} in virtual host ${vhost}. `,
            link("#/exchanges", "All exchanges")));
        return;
      }
      throw err;
    }
    const [source, destination] = await Promise.all([
      api.get(`${base}/bindings/source`), api.get(`${base}/bindings/destination`)]);
    fill(overview, dl([
      ["Virtual host", x.vhost],
      ["Type", x.type],
      ["Features", exchangeFeatures(x) || "–"],
      ["Durable", yesNo(x.durable)],
      ["Auto delete", yesNo(x.auto_delete)],
      ["Internal", yesNo(x.internal)],
      ["Arguments", Object.keys(x.arguments || {}).length ? value(x.arguments) : "none"],
      ["Message rate in", statRate(x, "publish_in")],
      ["Message rate out", statRate(x, "publish_out")],
    ]));
    if (name === "") {
      fill(from, h("p", {}, "The default exchange is bound to every queue by its name; it ",
        "takes no other bindings."));
    } else {
      fill(from, bindingsTable({ caption: "Bindings from this exchange", bindings: source,
        side: "destination", onChange: refresh, note }));
    }
    fill(to, bindingsTable({ caption: "Bindings to this exchange", bindings: destination,
      side: "source", onChange: refresh, note }));
  }

  const remove = h("button", { type: "button", class: "danger", onclick: async () => {
    if (!window.confirm(`Delete exchange ${shown}?`)) return;
    try {
      await api.del(base);
      ctx.announce(`Exchange ${shown} deleted.`);
      ctx.navigate("#/exchanges");
    } catch (err) {
      actionNote.show(api.describe(err), true);
    }
  } }, "Delete exchange");

  fill(main,
    h("h1", {}, h("span", { class: "kind" }, "Exchange "), shown),
    h("p", { class: "subtitle" }, `in virtual host ${vhost} · `, link("#/exchanges", "all exchanges")),
    actionNote,
    section("Overview", overview),
    section("Bindings", note,
      h("h3", {}, "From this exchange"), from,
      name === "" ? null : [h("h3", {}, "Add binding from this exchange"),
        addBindingForm({ fixed: { vhost, source: name }, onChange: refresh })],
      h("h3", {}, "To this exchange"), to),
    section("Publish message", publishForm({ vhost, exchange: name })),
    name === "" || name.startsWith("amq.") ? null
      : section("Delete this exchange", h("div", { class: "actions" }, remove)));
  return { refresh };
}
