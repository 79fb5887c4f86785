// camctl live view: one tile per camera, the camera's own H.264 through Media Source Extensions
// (fragmented MP4 over a WebSocket, one fragment per frame), status from server-sent events.
"use strict";

const LAG_SEEK = 1.0;   // seconds behind the live edge before jumping to it
const LAG_FAST = 0.1;   // seconds behind before playing a little faster to catch up
const KEEP = 10;        // seconds of played video kept in the buffer

class LivePlayer {
  // tiles play the camera's live stream (its sub stream, where it has one); a chosen camera its
  // main stream (setStream), full size.
  constructor(tile, camera) {
    this.tile = tile;
    this.camera = camera;
    this.stream = null;
    this.video = tile.querySelector("video");
    this.img = tile.querySelector("img.mjpeg");
    this.queue = [];
    this.sourceBuffer = null;
    this.connect();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = this.stream ? `?stream=${encodeURIComponent(this.stream)}` : "";
    const ws = new WebSocket(`${scheme}://${location.host}/${encodeURIComponent(this.camera)}/live.ws${query}`);
    this.tile.dataset.stream = this.stream || this.tile.dataset.live || "";
    ws.binaryType = "arraybuffer";
    ws.onmessage = (event) => {
      if (typeof event.data === "string") this.control(JSON.parse(event.data));
      else this.append(event.data);
    };
    ws.onclose = () => {
      this.ws = null;
      if (!this.paused) setTimeout(() => this.connect(), 1000);  // worker or camctl restarting: again
    };
    this.ws = ws;
  }

  // Another of the camera's streams (null: the tile's own): the next picture comes from it.
  setStream(stream) {
    if (stream === this.stream) return;
    this.stream = stream;
    if (this.paused) return;
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
      this.ws = null;
    }
    this.reset();
    this.connect();
  }

  // Recorded footage plays in this tile's video element meanwhile.
  pause() {
    this.paused = true;
    if (this.ws) this.ws.close();
    this.reset();
  }

  resume() {
    this.paused = false;
    this.reset();
    if (!this.ws) this.connect();
  }

  control(message) {
    if (this.paused) return;
    if (message.type === "stream") this.start(message);
    else if (message.type === "offline") {
      this.reset();
      setTileState(this.tile, false, message.reason);
    }
  }

  start(stream) {
    this.reset();
    this.tile.dataset.codec = stream.codec;
    if (!window.MediaSource || !MediaSource.isTypeSupported(stream.mime)) {
      this.fallback(stream);
      return;
    }
    const source = new MediaSource();
    this.video.src = URL.createObjectURL(source);
    source.addEventListener("sourceopen", () => {
      URL.revokeObjectURL(this.video.src);
      this.sourceBuffer = source.addSourceBuffer(stream.mime);
      this.sourceBuffer.mode = "segments";
      this.sourceBuffer.addEventListener("updateend", () => this.updated());
      this.pump();
    }, { once: true });
  }

  // H.265 where this browser cannot decode it: the server's MJPEG stream instead, and say so.
  fallback(stream) {
    this.usingMjpeg = true;
    this.video.hidden = true;
    this.img.hidden = false;
    const query = this.stream ? `?stream=${encodeURIComponent(this.stream)}` : "";
    this.img.src = `/${encodeURIComponent(this.camera)}/stream.mjpeg${query}`;
    this.tile.querySelector(".note").textContent =
      `${stream.codec.startsWith("h") ? "H.265" : stream.codec}: shown as MJPEG (this browser cannot play it)`;
  }

  reset() {
    this.queue = [];
    this.sourceBuffer = null;
    if (this.usingMjpeg) {
      this.img.removeAttribute("src");
      this.img.hidden = true;
      this.video.hidden = false;
      this.usingMjpeg = false;
      this.tile.querySelector(".note").textContent = "";
    }
    this.video.removeAttribute("src");
    this.video.load();
  }

  append(data) {
    if (this.usingMjpeg || this.paused) return;
    this.queue.push(data);
    this.pump();
  }

  pump() {
    const buffer = this.sourceBuffer;
    if (!buffer || buffer.updating || this.queue.length === 0) return;
    let size = 0;
    for (const part of this.queue) size += part.byteLength;
    const data = new Uint8Array(size);
    let at = 0;
    for (const part of this.queue) {
      data.set(new Uint8Array(part), at);
      at += part.byteLength;
    }
    this.queue = [];
    try {
      buffer.appendBuffer(data);
    } catch (error) {  // the buffer is full or the stream broke: start over at the next connection
      this.ws && this.ws.close();
    }
  }

  updated() {
    const video = this.video, ranges = video.buffered;
    if (ranges.length) {
      const last = ranges.length - 1, end = ranges.end(last), lag = end - video.currentTime;
      if (lag > LAG_SEEK || video.currentTime < ranges.start(last)) {
        video.currentTime = Math.max(ranges.start(last), end - 0.05);  // a new viewer starts at the edge
      }
      video.playbackRate = lag > LAG_FAST ? 1.25 : 1.0;
      if (video.paused) video.play().catch(() => {});
      if (video.currentTime - ranges.start(0) > 2 * KEEP && !this.sourceBuffer.updating) {
        this.sourceBuffer.remove(0, video.currentTime - KEEP);
        return;  // its own updateend pumps what is queued
      }
    }
    this.pump();
  }
}

function setTileState(tile, online, reason) {
  if (tile.classList.contains("playback")) return;  // footage plays: the camera's state shows on return
  const badge = tile.querySelector(".badge");
  badge.dataset.online = String(online);
  badge.textContent = online ? "live" : "offline";
  const shown = tile.querySelector(".reason");
  shown.hidden = online;
  shown.textContent = online ? "" : (reason || "offline");
}

function formatRate(status) {
  if (!status.online) return "";
  const kbps = status.bitrate_kbps >= 1000 ? `${(status.bitrate_kbps / 1000).toFixed(1)} Mbit/s`
    : `${status.bitrate_kbps} kbit/s`;
  return `${status.fps.toFixed(1)} fps · ${kbps}`;
}

function layout(count) {
  const cols = count <= 1 ? 1 : count <= 4 ? 2 : count <= 9 ? 3 : 4;
  document.getElementById("grid").style.setProperty("--cols", cols);
}

// One camera on the whole page, with its timeline; again (or Escape): back to all of them. Its
// address is /<camera>/ (and ?t=<RFC 3339> while footage plays: a link to that moment).
function choose(tile) {
  const solo = document.body.classList.toggle("solo", !tile.classList.contains("chosen"));
  for (const other of document.querySelectorAll(".tile")) {
    other.classList.toggle("chosen", solo && other === tile);
    if (other.live) other.live.setStream(solo && other === tile ? other.dataset.main : null);
  }
  if (!solo && tile.playback) tile.playback.backToLive();
  history.replaceState(null, "", solo ? `/${tile.dataset.slug}/` : "/");
  if (solo && tile.timeline) tile.timeline.refresh();
}

function chosenTile() {
  return document.body.classList.contains("solo") ? document.querySelector(".tile.chosen") : null;
}

// The other camctl nodes on the bus: a link to each one's page, or since when it is unreachable.
async function showFleet() {
  const response = await fetch("/api/fleet").catch(() => null);
  if (!response || !response.ok) return;
  const { nodes } = await response.json();
  const fleet = document.getElementById("fleet");
  fleet.replaceChildren();
  for (const node of nodes.filter((n) => !n.self)) {
    const entry = document.createElement(node.reachable && node.url ? "a" : "span");
    entry.className = node.reachable ? "node" : "node unreachable";
    entry.dataset.node = node.node;
    entry.dataset.reachable = String(node.reachable);
    if (node.reachable && node.url) {
      entry.href = `${node.url}/`;
      entry.textContent = `${node.node} · ${node.online}/${node.cameras}`;
      entry.title = `${node.node}: ${node.online} of ${node.cameras} cameras online`;
    } else {
      entry.textContent = `${node.node} · unreachable`;
      entry.title = `${node.node} stopped answering; last heard ${new Date(node.last_seen).toLocaleString(undefined, { hour12: false })}`;
    }
    fleet.appendChild(entry);
  }
}

async function main() {
  const response = await fetch("/api/cameras");
  const { node, cameras } = await response.json();
  document.getElementById("node").textContent = node;
  const grid = document.getElementById("grid");
  const template = document.getElementById("tile");
  const tiles = new Map();
  for (const camera of cameras) {
    const tile = template.content.firstElementChild.cloneNode(true);
    tile.dataset.camera = camera.camera_id;
    tile.querySelector("video").dataset.camera = camera.camera_id;
    tile.querySelector(".badge").dataset.camera = camera.camera_id;
    tile.querySelector(".name").textContent = camera.name;
    tile.dataset.slug = camera.slug;
    tile.dataset.live = camera.live;
    tile.dataset.main = camera.main;
    tile.addEventListener("click", () => choose(tile));
    grid.appendChild(tile);
    tiles.set(camera.camera_id, tile);
    const live = tile.live = new LivePlayer(tile, camera.camera_id);
    tile.playback = new Playback(tile, camera.camera_id, camera.slug, live);
    tile.timeline = new Timeline(tile, camera.camera_id, camera.slug, tile.playback);
  }
  layout(cameras.length);
  // /<camera>/ (id or slug), or the older #<camera>; ?t=<time>: that camera playing from then
  const named = decodeURIComponent(location.pathname.split("/")[1] || location.hash.slice(1));
  const chosen = [...tiles.values()].find((t) => named && (t.dataset.camera === named || t.dataset.slug === named));
  if (chosen) {
    const moment = Date.parse(new URLSearchParams(location.search).get("t") || "");
    choose(chosen);
    if (!Number.isNaN(moment)) chosen.playback.playAt(moment / 1000).then(() => chosen.timeline.refresh());
  }
  document.addEventListener("keydown", (event) => {
    const tile = chosenTile();
    if (!tile) return;
    if (event.key === "Escape") choose(tile);
    else if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      event.preventDefault();
      tile.playback.step(event.key === "ArrowLeft" ? -STEP : STEP);
    }
  });

  const events = new EventSource("/api/events");
  events.onmessage = (event) => {
    const { cameras: statuses } = JSON.parse(event.data);
    let online = 0;
    for (const status of statuses) {
      const tile = tiles.get(status.camera_id);
      if (!tile) continue;
      setTileState(tile, status.online, status.error);
      tile.querySelector(".rate").textContent = formatRate(status);
      if (status.online) online += 1;
    }
    const summary = document.getElementById("summary");
    summary.textContent = `${online}/${tiles.size} online`;
    summary.classList.toggle("bad", online < tiles.size);
  };
  events.onerror = () => {
    const summary = document.getElementById("summary");
    summary.textContent = "camctl not answering";
    summary.classList.add("bad");
  };
  showFleet();
  setInterval(showFleet, 10000);
  const tick = () => { document.getElementById("clock").textContent = new Date().toLocaleString(undefined, { hour12: false }); };
  tick();
  setInterval(tick, 1000);
}

main();
