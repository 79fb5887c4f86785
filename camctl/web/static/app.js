// camctl live view: one tile per camera, the camera's own H.264 through Media Source Extensions
// (fragmented MP4 over a WebSocket, one fragment per frame), status from server-sent events.
// Where MediaSource is missing (iPhone): ManagedMediaSource; where neither is, HLS from the same
// fragments (live.m3u8); where that fails too, JPEG pictures fetched one after another (never an
// endless MJPEG response: six of those hold all of a browser's connections to the box).
// Only what is seen streams: a tile scrolled away, a hidden tab or a locked phone stops its stream
// within HIDE_GRACE, and a tile seen again starts at the live edge.
"use strict";

const LAG_SEEK = 1.0;   // seconds behind the live edge before jumping to it
// Behind the least lag this browser keeps (Chromium ~0.05 s, WebKit ~0.13 s it will not give up)
// by more than LAG_FAST: play a little faster; within LAG_CAUGHT of it again: normal speed.
const LAG_FAST = 0.05;
const LAG_CAUGHT = 0.02;
const FLOOR_RISE = 0.002;  // seconds per picture the least lag seen may rise (it follows a browser's floor)
const FLOOR_MAX = 0.2;     // but no browser needs more: beyond it, catch up
const KEEP = 10;        // seconds of played video kept in the buffer
const HIDE_GRACE = 2000;  // ms a tile may be out of sight (a scroll past it) before its stream stops
const STILL_PERIOD = { tile: 400, chosen: 100 };  // ms between two JPEGs where nothing else plays
const WAYS = {
  mse: "MSE: the camera's own H.264 over a WebSocket",
  mms: "ManagedMediaSource: the camera's own H.264 (Safari on iPhone and iPad)",
  hls: "HLS: the camera's own H.264 in fMP4 segments (a few seconds behind)",
  jpeg: "JPEG pictures: this browser plays none of the camera's video",
};

// What this browser can play the camera's stream with, best first.
function mediaSource() {
  if (window.MediaSource) return { kind: "mse", Source: window.MediaSource };
  if (window.ManagedMediaSource) return { kind: "mms", Source: window.ManagedMediaSource };
  return null;
}

function playsHls(video) {
  return video.canPlayType("application/vnd.apple.mpegurl") !== "";
}

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
    this.paused = false;     // footage plays in the tile meanwhile
    this.seen = true;        // on screen (IntersectionObserver) and the page visible
    this.running = false;
    this.hideTimer = null;
    this.way = null;         // mse, mms, hls or jpeg, once the stream has started
    this.video.disableRemotePlayback = true;  // Safari: ManagedMediaSource plays only so
    this.video.addEventListener("error", () => {  // HLS: the camera offline or camctl restarting
      if (this.way === "hls" && this.running) {
        setTimeout(() => this.way === "hls" && this.running && this.playHls(this.shownStream()), 2000);
      }
    });
    this.play();
  }

  get query() {
    return this.stream ? `?stream=${encodeURIComponent(this.stream)}` : "";
  }

  // The stream this tile shows now (also on the tile, for scripts and tests).
  shownStream() {
    return this.tile.dataset.stream = this.stream || this.tile.dataset.live || "";
  }

  // Starts the stream the best way this browser has (a WebSocket for MSE; HLS or JPEGs otherwise).
  play() {
    this.running = true;
    this.tile.dataset.watching = "true";
    const stream = this.shownStream();
    if (mediaSource() && !this.forced) this.connect();
    else if (playsHls(this.video) && this.forced !== "jpeg") this.playHls(stream);
    else this.playJpeg(this.forced === "jpeg" ? this.forcedWhy : "");
  }

  // Stops whatever streams: the server sees the viewer go.
  halt() {
    this.running = false;
    this.tile.dataset.watching = "false";
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
      this.ws = null;
    }
    this.reset();
  }

  // Seen or not (scrolled away, the page hidden): a tile out of sight stops after HIDE_GRACE.
  setSeen(seen) {
    this.seen = seen;
    clearTimeout(this.hideTimer);
    if (seen && !this.running && !this.paused) this.play();
    else if (!seen && this.running) this.hideTimer = setTimeout(() => !this.seen && this.halt(), HIDE_GRACE);
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/${encodeURIComponent(this.camera)}/live.ws${this.query}`);
    ws.binaryType = "arraybuffer";
    ws.onmessage = (event) => {
      if (typeof event.data === "string") this.control(JSON.parse(event.data));
      else this.append(event.data);
    };
    ws.onclose = () => {
      this.ws = null;
      if (this.running) setTimeout(() => this.running && !this.ws && this.connect(), 1000);  // camctl restarting: again
    };
    this.ws = ws;
  }

  // Another of the camera's streams (null: the tile's own): the next picture comes from it.
  setStream(stream) {
    if (stream === this.stream) return;
    this.stream = stream;
    this.forced = null;  // another stream may have another codec
    if (this.paused || !this.running) return;
    this.halt();
    this.play();
  }

  // Recorded footage plays in this tile's video element meanwhile.
  pause() {
    this.paused = true;
    this.halt();
  }

  resume() {
    this.paused = false;
    if (this.seen) this.play();
  }

  control(message) {
    if (!this.running) return;
    if (message.type === "stream") this.start(message);
    else if (message.type === "offline") {
      this.reset();
      setTileState(this.tile, false, message.reason);
    }
  }

  start(stream) {
    this.reset();
    this.tile.dataset.codec = stream.codec;
    const found = mediaSource();
    if (!found || !found.Source.isTypeSupported(stream.mime)) {
      this.fallback(stream);
      return;
    }
    this.showWay(found.kind);
    const source = new found.Source();
    source.addEventListener("sourceopen", () => {
      if (this.video.src.startsWith("blob:")) URL.revokeObjectURL(this.video.src);
      this.sourceBuffer = source.addSourceBuffer(stream.mime);
      this.sourceBuffer.mode = "segments";
      this.sourceBuffer.addEventListener("updateend", () => this.updated());
      this.pump();
    }, { once: true });
    if (found.kind === "mms") {
      try {
        this.video.srcObject = source;  // as Safari expects a ManagedMediaSource
      } catch {
        this.video.src = URL.createObjectURL(source);
      }
    } else {
      this.video.src = URL.createObjectURL(source);
    }
  }

  // A codec this browser's MediaSource cannot decode (H.265 mostly): HLS where the browser plays
  // HLS and that codec (Safari decodes H.265 there), else JPEGs; the tile says why.
  fallback(stream) {
    const why = `${stream.codec.startsWith("h") ? "H.265" : stream.codec}: this browser cannot play it`;
    this.halt();
    this.forced = playsHls(this.video) && this.video.canPlayType(stream.mime) !== "" ? "hls" : "jpeg";
    this.forcedWhy = why;
    this.play();
    this.tile.querySelector(".note").textContent = this.forced === "hls" ? `${why} as MSE; HLS` : `${why}; shown as MJPEG`;
  }

  playHls(stream) {
    this.showWay("hls");
    const query = stream ? `?stream=${encodeURIComponent(stream)}` : "";
    this.video.src = `/${encodeURIComponent(this.camera)}/live.m3u8${query}`;
    this.video.play().catch(() => {});
  }

  // One JPEG after another from frame.jpg, at the size the tile is shown: one short request at a
  // time per tile, so a page of sixteen leaves the browser connections for everything else.
  playJpeg(why) {
    this.showWay("jpeg");
    this.usingMjpeg = true;
    this.video.hidden = true;
    this.img.hidden = false;
    if (why) this.tile.querySelector(".note").textContent = `${why}; shown as MJPEG`;
    const generation = this.jpegGeneration = (this.jpegGeneration || 0) + 1;
    const next = async () => {
      if (!this.running || this.jpegGeneration !== generation) return;
      const started = performance.now();
      const chosen = this.tile.classList.contains("chosen");
      const width = Math.min(1920, Math.round(this.tile.clientWidth * (window.devicePixelRatio || 1)));
      const query = new URLSearchParams({ stream: this.shownStream() || "main" });
      if (width > 0 && !chosen) query.set("width", String(width));
      try {
        const response = await fetch(`/${encodeURIComponent(this.camera)}/frame.jpg?${query}`, { cache: "no-store" });
        if (response.ok && this.jpegGeneration === generation) {
          const url = URL.createObjectURL(await response.blob());
          const old = this.img.src;
          this.img.src = url;
          if (old.startsWith("blob:")) URL.revokeObjectURL(old);
        }
      } catch { /* camctl restarting: the next try */ }
      const period = chosen ? STILL_PERIOD.chosen : STILL_PERIOD.tile;
      setTimeout(next, Math.max(0, period - (performance.now() - started)));
    };
    next();
  }

  showWay(way) {
    this.way = way;
    this.tile.dataset.playback = way;
    const label = this.tile.querySelector(".way");
    label.textContent = way === "jpeg" ? "MJPEG" : way.toUpperCase();
    label.title = WAYS[way];
  }

  reset() {
    this.queue = [];
    this.sourceBuffer = null;
    this.lagFloor = null;
    if (this.usingMjpeg) {
      this.jpegGeneration = (this.jpegGeneration || 0) + 1;  // the loop ends at its next turn
      if (this.img.src.startsWith("blob:")) URL.revokeObjectURL(this.img.src);
      this.img.removeAttribute("src");
      this.img.hidden = true;
      this.video.hidden = false;
      this.usingMjpeg = false;
    }
    if (!this.forced) this.tile.querySelector(".note").textContent = "";
    if (this.video.srcObject) this.video.srcObject = null;
    this.video.removeAttribute("src");
    this.video.load();
  }

  append(data) {
    if (this.usingMjpeg || !this.running) return;
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
      this.lagFloor = Math.min(lag, (this.lagFloor ?? lag) + FLOOR_RISE, FLOOR_MAX);
      if (lag > this.lagFloor + LAG_FAST) video.playbackRate = 1.25;
      else if (lag < this.lagFloor + LAG_CAUGHT) video.playbackRate = 1.0;
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

// Columns for a laptop's screen; a phone's (CSS) takes one or two, and the page scrolls.
function layout(count) {
  const cols = count <= 1 ? 1 : count <= 4 ? 2 : count <= 9 ? 3 : 4;
  const grid = document.getElementById("grid");
  grid.style.setProperty("--cols", cols);
  grid.style.setProperty("--rows", Math.ceil(count / cols));
  grid.dataset.count = String(count);
}

// Streams only for what is seen: tiles on screen, on a page that is visible.
function watchVisibility(tiles) {
  const onScreen = new Map();
  const update = (tile) => tile.live.setSeen(onScreen.get(tile) !== false && document.visibilityState !== "hidden");
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      onScreen.set(entry.target, entry.isIntersecting);
      update(entry.target);
    }
  });
  for (const tile of tiles) observer.observe(tile);
  document.addEventListener("visibilitychange", () => tiles.forEach(update));
  // a locked iPhone or a page put in the back-forward cache: pagehide, not always visibilitychange
  window.addEventListener("pagehide", () => tiles.forEach((tile) => tile.live.setSeen(false)));
  window.addEventListener("pageshow", () => tiles.forEach(update));
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
  watchVisibility([...tiles.values()]);
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
