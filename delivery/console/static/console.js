// hubstream console: polls /console/api/* with the admin token (Authorization: Bearer) and follows one
// recipient's SSE stream (?access_token=, as EventSource cannot send headers). Plain DOM, no build step; every
// value is put on the page as text, never as HTML.
"use strict";

const GROUPS_EVERY_MS = 1500;
const TOPICS_EVERY_MS = 3000;
const KEPT_MESSAGES = 200;
const $ = (id) => document.getElementById(id);

let token = sessionStorage.getItem("hubstream.console.token") || "";
let node = null;           // {group, topics, schemas}
let selected = null;       // the group whose members and ownership are shown
let source = null;         // the EventSource of the live stream
let timers = [];

function el(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) element.setAttribute(name, String(value));
  }
  for (const child of children) {
    element.append(child instanceof Node ? child : child === null || child === undefined ? "" : String(child));
  }
  return element;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function cell(value, numeric) {
  return el("td", numeric ? { class: "num" } : {}, value === null || value === undefined ? "–" : value);
}

function short(memberId) {
  return memberId ? memberId.slice(0, 28) : "–";
}

function setStatus(text, isError) {
  const status = $("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
}

class Unauthorized extends Error {}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401 || response.status === 403) {
    throw new Unauthorized((body.error && body.error.message) || response.statusText);
  }
  if (!response.ok) throw new Error((body.error && body.error.message) || response.status + " " + response.statusText);
  return body;
}

function showLogin(message) {
  stopPolling();
  stopStream();
  $("console").hidden = true;
  $("sign-out").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("token").focus();
}

async function open() {
  try {
    node = await api("/console/api/node");
  } catch (error) {
    showLogin(error instanceof Unauthorized ? error.message : "the node did not answer: " + error.message);
    return;
  }
  sessionStorage.setItem("hubstream.console.token", token);
  selected = selected || node.group;
  $("node").textContent = "node group " + node.group + " · " + node.topics.join(", ");
  $("login").hidden = true;
  $("console").hidden = false;
  $("sign-out").hidden = false;
  poll(refreshGroups, GROUPS_EVERY_MS);
  poll(refreshTopics, TOPICS_EVERY_MS);
}

function poll(refresh, everyMs) {
  const round = async () => {
    try {
      await refresh();
      setStatus("updated " + new Date().toLocaleTimeString(), false);
    } catch (error) {
      if (error instanceof Unauthorized) return showLogin(error.message);
      setStatus(error.message, true);
    }
    timers.push(setTimeout(round, everyMs));
  };
  round();
}

function stopPolling() {
  timers.forEach(clearTimeout);
  timers = [];
}

async function refreshGroups() {
  const [listing, group] = await Promise.all([
    api("/console/api/groups"),
    api("/console/api/groups/" + encodeURIComponent(selected)),
  ]);
  fill($("group-list").tBodies[0], listing.groups.map((g) => {
    const row = el("tr", { "data-group": g.group, class: g.group === selected ? "selected" : null },
      el("td", {}, g.group), cell(g.state), cell(g.members, true), cell(g.lag, true), cell(g.topics.join(", ")));
    row.addEventListener("click", () => { selected = g.group; refreshGroups().catch(() => {}); });
    return row;
  }));
  renderGroup(group);
}

function renderGroup(group) {
  $("group-name").textContent = group.group;
  $("group-state").textContent = group.state + " · " + group.members.length + " member(s)" +
    (group.standby.length ? " · " + group.standby.length + " standby" : "") +
    (group.lag === null ? "" : " · lag " + group.lag);
  const colour = new Map(group.members.map((m, i) => [m.memberId, "owner-" + (i % 4)]));
  fill($("members").tBodies[0], group.members.map((m) => {
    const owns = m.partitions.map((p) => p.topic + "[" + p.partition + "]").join(", ");
    return el("tr", { "data-member": m.memberId, "data-partitions": m.partitions.map((p) => p.partition).join(",") },
      el("td", { class: colour.get(m.memberId), title: m.memberId }, short(m.memberId)),
      cell(m.clientId), cell(m.host), el("td", { class: owns ? null : "standby" }, owns || "standby"));
  }));
  fill($("ownership").tBodies[0], group.partitions.map((p) =>
    el("tr", { "data-topic": p.topic, "data-partition": p.partition, "data-owner": p.owner || "" },
      cell(p.topic), cell(p.partition, true),
      el("td", { class: colour.get(p.owner) || null, title: p.owner }, short(p.owner)),
      cell(p.committed, true), cell(p.end, true),
      el("td", { class: "num" + (p.lag ? " lagging" : "") }, p.lag === null ? "–" : p.lag))));
}

async function refreshTopics() {
  const view = await api("/console/api/topics");
  const rows = [];
  for (const topic of view.topics) {
    if (!topic.exists) {
      rows.push(el("tr", { "data-topic": topic.topic }, cell(topic.topic), el("td", { colspan: 5 }, "not on the cluster")));
      continue;
    }
    for (const p of topic.partitions) {
      rows.push(el("tr", { "data-topic": p.topic, "data-partition": p.partition },
        cell(p.topic), cell(p.partition, true), cell(p.earliest, true), cell(p.latest, true), cell(p.records, true),
        cell(p.lastTimestamp ? new Date(p.lastTimestamp).toLocaleString() : null)));
    }
  }
  fill($("partitions").tBodies[0], rows);
  fill($("dead-letters").tBodies[0], view.deadLetters.map((d) =>
    el("tr", { "data-dlq": d.dlq, "data-records": d.records },
      cell(d.topic), cell(d.exists ? d.dlq : d.dlq + " (none yet)"),
      el("td", { class: "num" + (d.records ? " lagging" : "") }, d.records))));
}

function follow(recipient) {
  stopStream();
  const list = $("stream-messages");
  list.replaceChildren();
  const url = "/v1/mailboxes/" + encodeURIComponent(recipient) + "/stream?access_token=" + encodeURIComponent(token);
  source = new EventSource(url);
  $("stream-state").textContent = "connecting…";
  source.onopen = () => { $("stream-state").textContent = "following " + recipient; };
  source.onerror = () => {
    $("stream-state").textContent = source.readyState === EventSource.CLOSED ? "closed" : "reconnecting…";
  };
  const show = (event) => {
    const message = JSON.parse(event.data);
    const line = new Date(message.arrivedAt).toLocaleTimeString() + "  " + message.topic + "  " + message.eventId +
      "  " + JSON.stringify(message.event);
    list.prepend(el("li", { "data-event-id": message.eventId, "data-cursor": message.cursor }, line));
    while (list.children.length > KEPT_MESSAGES) list.lastChild.remove();
  };
  for (const name of node.schemas) source.addEventListener(name, show);
  source.addEventListener("gap", () => list.prepend(el("li", { class: "standby" }, "gap: older messages are gone")));
}

function stopStream() {
  if (source) source.close();
  source = null;
  $("stream-state").textContent = "";
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("token").value.trim();
    open();
  });
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem("hubstream.console.token");
    token = "";
    showLogin("");
  });
  $("stream-form").addEventListener("submit", (event) => {
    event.preventDefault();
    follow($("recipient").value.trim());
  });
  $("stream-stop").addEventListener("click", stopStream);
  if (token) open(); else showLogin("");
});
