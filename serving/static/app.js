// The Braid search page: search by an uploaded or picked image, show the results, log clicks.
"use strict";

const state = { impressionId: null, queryId: null, page: 1, hasMore: false };
const $ = (id) => document.getElementById(id);

function eventId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + Math.random().toString(36).slice(2);
}

function say(text) { $("status").textContent = text; }

async function failure(response) {
  try {
    const body = await response.json();
    return body.detail || response.statusText;
  } catch (_) {
    return response.statusText;
  }
}

async function search(query, page) {
  let init;
  if (query.file) {
    const form = new FormData();
    form.append("image", query.file);
    form.append("page", String(page));
    init = { method: "POST", body: form };
  } else {
    init = {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ...query, page }),
    };
  }
  say(page > 1 ? "Loading more results…" : "Searching…");
  const response = await fetch("/search", { ...init, credentials: "same-origin" });
  if (!response.ok) {
    say("Search failed: " + (await failure(response)));
    return;
  }
  const body = await response.json();
  state.impressionId = body.impression_id;
  state.queryId = body.query_id;
  state.page = body.page;
  state.hasMore = body.has_more;
  show(body, page > 1);
}

function show(body, append) {
  const list = $("results");
  if (!append) list.replaceChildren();
  const impressionId = body.impression_id;
  for (const result of body.results) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.setAttribute("aria-pressed", "false");
    button.setAttribute("aria-label", `Result ${result.rank}: ${result.image_id}`);
    button.dataset.imageId = result.image_id;
    const img = document.createElement("img");
    img.src = result.thumbnail_url;
    img.alt = result.image_id;
    img.width = 64;
    img.height = 64;
    const rank = document.createElement("span");
    rank.className = "rank";
    rank.textContent = String(result.rank);
    button.append(img, rank);
    button.addEventListener("click", () => click(button, impressionId, result));
    item.append(button);
    list.append(item);
  }
  $("more").hidden = !body.has_more;
  const shown = list.children.length;
  say(shown ? `Showing ${shown} results.` : "No results.");
}

async function click(button, impressionId, result) {
  const response = await fetch("/clicks", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    credentials: "same-origin",
    body: JSON.stringify({
      impression_id: impressionId,
      position: result.position,
      click_id: eventId(),
    }),
  });
  if (!response.ok) {
    say("Could not record the click: " + (await failure(response)));
    return;
  }
  button.setAttribute("aria-pressed", "true");
  say(`Recorded your click on result ${result.rank} (${result.image_id}).`);
}

async function loadSamples() {
  const response = await fetch("/samples?count=12&seed=" + Math.floor(Math.random() * 1e6));
  if (!response.ok) return;
  const list = $("samples");
  for (const sample of await response.json()) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.setAttribute("aria-label", `Search with ${sample.image_id}`);
    button.dataset.imageId = sample.image_id;
    const img = document.createElement("img");
    img.src = sample.thumbnail_url;
    img.alt = sample.image_id;
    img.width = 64;
    img.height = 64;
    button.append(img);
    button.addEventListener("click", () => {
      state.query = { corpus_id: sample.image_id };
      search(state.query, 1);
    });
    item.append(button);
    list.append(item);
  }
}

function useFile(file) {
  if (!file) return;
  state.query = { file };
  search(state.query, 1);
}

$("file").addEventListener("change", (event) => useFile(event.target.files[0]));
const drop = $("drop");
drop.addEventListener("click", () => $("file").click());
drop.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    $("file").click();
  }
});
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  useFile(event.dataTransfer.files[0]);
});
$("more").addEventListener("click", () => {
  if (!state.query) return;
  const next = state.query.file ? { query_id: state.queryId } : state.query;
  search(next, state.page + 1);
});
loadSamples();
