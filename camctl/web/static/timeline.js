// camctl footage: a camera's timeline (recorded spans, gaps with their reasons, now) and the
// playback of its recordings from any moment, in the same tile as its live view.
"use strict";

const CHUNK = 300;            // seconds of footage asked for at a time; the next chunk follows on
const STEP = 10;              // seconds for the arrow keys and the step buttons
const ZOOMS = { "24h": 86400, "1h": 3600, "1m": 60 };
const REFRESH = 10000;        // ms between two listings of the timeline

function iso(seconds) {
  return new Date(seconds * 1000).toISOString();
}

function shownTime(seconds) {
  return new Date(seconds * 1000).toLocaleString(undefined, { hour12: false });
}

// Plays recorded footage in the tile's video element: recording.mp4 from the keyframe at or before
// the moment asked, seeked to the moment itself; the frame's capture time goes under the picture.
class Playback {
  constructor(tile, camera, slug, live) {
    this.tile = tile;
    this.camera = camera;
    this.slug = slug;
    this.live = live;             // the LivePlayer: paused while footage plays
    this.video = tile.querySelector("video");
    this.when = tile.querySelector(".when");
    this.active = false;
    this.first = 0;               // capture time of the loaded footage's first frame
    this.end = 0;
    this.video.addEventListener("timeupdate", () => this.tick());
    this.video.addEventListener("ended", () => this.active && this.playAt(this.end));
  }

  get time() {
    return this.active && this.loaded ? this.first + this.video.currentTime : null;
  }

  url(start, duration, download) {
    const query = new URLSearchParams({ start: iso(start), duration: duration.toFixed(3) });
    if (download) query.set("download", "1");
    return `/${encodeURIComponent(this.slug)}/recording.mp4?${query}`;
  }

  async playAt(moment) {
    const now = Date.now() / 1000;
    if (moment >= now - 1) {
      this.backToLive();
      return;
    }
    this.active = true;
    this.loaded = false;
    this.live.pause();
    this.tile.classList.add("playback");
    this.tile.querySelector(".badge").textContent = "recorded";
    this.tile.querySelector(".badge").dataset.online = "recorded";
    const url = this.url(moment, Math.min(CHUNK, now - moment));
    this.pending = url;
    const head = await fetch(url, { method: "HEAD" });  // cuts the range; says its first frame's time
    if (this.pending !== url) return;                  // another moment was asked meanwhile
    if (!head.ok) {
      // the last minute or so is in the segment being written: it plays once that closes
      const recent = now - moment < 120 ? " yet (the newest footage plays once its segment closes)" : "";
      this.note(head.status === 404 ? `no footage at ${shownTime(moment)}${recent}` : `footage unavailable (${head.status})`);
      this.video.removeAttribute("src");
      this.video.load();
      this.video.removeAttribute("data-time");
      return;
    }
    this.note("");
    this.first = Date.parse(head.headers.get("X-Footage-Start")) / 1000;
    this.end = Date.parse(head.headers.get("X-Footage-End")) / 1000;
    this.loaded = false;
    this.video.src = url;
    this.video.addEventListener("loadedmetadata", () => {
      this.video.addEventListener("seeked", () => {
        this.loaded = true;  // the picture on screen is the moment asked for: its time can be told
        this.tick();
        this.video.play().catch(() => {});
      }, { once: true });
      this.video.currentTime = Math.max(0, moment - this.first);
    }, { once: true });
  }

  step(seconds) {
    const from = this.time ?? Date.now() / 1000;
    this.playAt(from + seconds);
  }

  backToLive() {
    this.pending = null;
    if (!this.active) return;
    this.active = false;
    this.tile.classList.remove("playback");
    this.video.removeAttribute("data-time");
    this.when.textContent = "";
    this.note("");
    this.live.resume();
  }

  tick() {
    const time = this.time;
    if (time === null) return;
    this.video.dataset.time = iso(time);
    this.when.textContent = shownTime(time);
  }

  note(text) {
    this.tile.querySelector(".footage-note").textContent = text;
  }
}

// The bar under a chosen camera: what is recorded over the last 24 h (or an hour, or a minute
// around the moment playing), gaps with their reasons on hover, now, and the moment on screen.
// Click: play from there. Drag: select a range (it plays from its start; "download" exports it).
class Timeline {
  constructor(tile, camera, slug, playback) {
    this.tile = tile;
    this.camera = camera;
    this.slug = slug;
    this.playback = playback;
    this.bar = tile.querySelector(".timeline");
    this.bar.dataset.camera = camera;
    this.span = ZOOMS["24h"];
    this.selection = null;
    this.listing = { spans: [], gaps: [], motion: [] };
    this.wire();
  }

  visible() {
    return document.body.classList.contains("solo") && this.tile.classList.contains("chosen");
  }

  range() {
    const now = Date.now() / 1000;
    if (this.span >= ZOOMS["24h"]) return [now - this.span, now];
    const center = this.playback.time ?? now;
    const end = Math.min(now, center + this.span / 2);
    return [end - this.span, end];
  }

  async refresh() {
    if (!this.visible()) return;
    const [start, end] = this.range();
    const query = new URLSearchParams({ start: iso(start), end: iso(end) });
    const response = await fetch(`/api/recordings/${encodeURIComponent(this.slug)}?${query}`);
    if (!response.ok) return;
    this.listing = await response.json();
    this.shown = [start, end];
    this.draw();
  }

  at(fraction) {
    const [start, end] = this.shown || this.range();
    return start + fraction * (end - start);
  }

  place(element, from, to) {
    const [start, end] = this.shown || this.range();
    const left = Math.max(0, (from - start) / (end - start));
    const right = Math.min(1, (to - start) / (end - start));
    element.style.left = `${left * 100}%`;
    element.style.width = `${Math.max(0, right - left) * 100}%`;
  }

  draw() {
    const track = this.bar.querySelector(".track");
    track.replaceChildren();
    for (const span of this.listing.spans) {
      const from = Date.parse(span.start) / 1000, to = Date.parse(span.end) / 1000;
      const part = document.createElement("div");
      part.className = span.complete ? "span" : "span incomplete";
      part.title = `recorded ${shownTime(from)} – ${shownTime(to)}${span.complete ? "" : " (a segment was cut short)"}`;
      part.dataset.start = span.start;
      part.dataset.end = span.end;
      this.place(part, from, to);
      track.appendChild(part);
    }
    for (const gap of this.listing.gaps) {
      const from = Date.parse(gap.from) / 1000, to = Date.parse(gap.to) / 1000;
      const part = document.createElement("div");
      part.className = "gap";
      part.title = `${gap.reason} (${shownTime(from)} – ${shownTime(to)})`;
      part.dataset.reason = gap.reason;
      this.place(part, from, to);
      track.appendChild(part);
    }
    for (const move of this.listing.motion || []) {
      const from = Date.parse(move.start) / 1000, to = Date.parse(move.end) / 1000;
      const part = document.createElement("div");
      part.className = "motion";
      part.title = `motion ${shownTime(from)} – ${shownTime(to)} (${(move.score * 100).toFixed(1)} % of the picture)`;
      part.dataset.start = move.start;
      part.dataset.end = move.end;
      this.place(part, from, to);
      track.appendChild(part);
    }
    if (this.selection) {
      const part = document.createElement("div");
      part.className = "selection";
      this.place(part, ...this.selection);
      track.appendChild(part);
    }
    const head = document.createElement("div");
    head.className = "playhead";
    this.place(head, this.playback.time ?? Date.now() / 1000, this.playback.time ?? Date.now() / 1000);
    track.appendChild(head);
    const [start, end] = this.shown || this.range();
    track.dataset.start = iso(start);  // what the bar shows, end to end (for scripts and tests)
    track.dataset.end = iso(end);
    this.bar.querySelector(".from").textContent = shownTime(start);
    this.bar.querySelector(".to").textContent = this.span >= ZOOMS["24h"] ? "now" : shownTime(end);
    this.updateLinks();
  }

  updateLinks() {
    const download = this.tile.querySelector("a.download");
    const [from, to] = this.selection ?? [(this.playback.time ?? Date.now() / 1000) - 30, null];
    const until = to ?? from + 60;
    download.href = this.playback.url(from, Math.max(1, until - from), true);
    download.title = `MP4 of ${shownTime(from)} – ${shownTime(until)}`;
    const share = this.tile.querySelector("a.share");
    const moment = this.playback.time;
    share.href = moment === null ? `/${this.slug}/` : `/${this.slug}/?t=${encodeURIComponent(iso(moment))}`;
  }

  wire() {
    const panel = this.tile.querySelector(".footage");
    panel.addEventListener("click", (event) => event.stopPropagation());  // not the tile's zoom toggle
    const track = this.bar.querySelector(".track");
    let down = null;
    const fraction = (event) => {
      const box = track.getBoundingClientRect();
      return Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
    };
    track.addEventListener("pointerdown", (event) => {
      down = { x: event.clientX, at: this.at(fraction(event)) };
      track.setPointerCapture(event.pointerId);
    });
    track.addEventListener("pointermove", (event) => {
      if (!down || Math.abs(event.clientX - down.x) < 4) return;
      const here = this.at(fraction(event));
      this.selection = [Math.min(down.at, here), Math.max(down.at, here)];
      this.draw();
    });
    track.addEventListener("pointerup", (event) => {
      if (!down) return;
      const dragged = Math.abs(event.clientX - down.x) >= 4;
      if (!dragged) this.selection = null;
      const moment = dragged ? this.selection[0] : this.at(fraction(event));
      down = null;
      this.playback.playAt(moment).then(() => this.refresh());
    });
    for (const [name, seconds] of Object.entries(ZOOMS)) {
      panel.querySelector(`button[data-zoom="${name}"]`).addEventListener("click", (event) => {
        this.span = seconds;
        for (const b of panel.querySelectorAll("button[data-zoom]")) b.setAttribute("aria-pressed", String(b === event.target));
        this.refresh();
      });
    }
    panel.querySelector("button.live").addEventListener("click", () => {
      this.selection = null;
      this.playback.backToLive();
      this.refresh();
    });
    panel.querySelector("button.back").addEventListener("click", () => this.playback.step(-STEP));
    panel.querySelector("button.forward").addEventListener("click", () => this.playback.step(STEP));
    this.playback.video.addEventListener("timeupdate", () => this.shown && this.draw());
    setInterval(() => this.refresh(), REFRESH);
  }
}
