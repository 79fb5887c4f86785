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
    const fromCopy = head.headers.get("X-Footage-From") === "copy";  // this box lost it: played from copy.to
    this.tile.querySelector(".badge").textContent = fromCopy ? "from the copy" : "recorded";
    this.tile.querySelector(".badge").dataset.source = fromCopy ? "copy" : "disk";
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
    this.listing = { spans: [], gaps: [], motion: [], marks: [] };
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
      part.className = (span.complete ? "span" : "span incomplete") + (span.copy ? " copy" : "");
      const how = span.copy ? " (only in the copy elsewhere: fetched from there)" : span.complete ? "" : " (a segment was cut short)";
      part.title = `recorded ${shownTime(from)} – ${shownTime(to)}${how}`;
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
    for (const mark of this.listing.marks || []) {  // what someone marked: a link to its moment
      const from = Date.parse(mark.start) / 1000, to = Date.parse(mark.end) / 1000;
      const part = document.createElement("a");
      part.className = "mark";
      part.href = mark.link;
      part.title = `${mark.label || "marked"} (${shownTime(from)} – ${shownTime(to)}, by ${mark.source})`;
      part.dataset.label = mark.label;
      part.dataset.start = mark.start;
      part.addEventListener("pointerdown", (event) => event.stopPropagation());  // not the track's drag
      part.addEventListener("click", (event) => {
        event.preventDefault();
        event.stopPropagation();
        this.playback.playAt(from).then(() => this.refresh());
      });
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
    const moment = this.dragged ?? this.playback.time ?? Date.now() / 1000;
    this.place(head, moment, moment);
    track.dataset.moment = iso(moment);
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

  // The span shown (a pinch gives any between a minute and a day); the nearest button is pressed.
  zoomTo(seconds) {
    this.span = Math.min(ZOOMS["24h"], Math.max(ZOOMS["1m"], seconds));
    const nearest = Object.entries(ZOOMS).reduce((best, entry) =>
      Math.abs(Math.log(entry[1] / this.span)) < Math.abs(Math.log(best[1] / this.span)) ? entry : best);
    for (const b of this.tile.querySelectorAll("button[data-zoom]")) {
      b.setAttribute("aria-pressed", String(b.dataset.zoom === nearest[0]));
    }
    if (this.shown) {
      const [start, end] = this.shown, center = this.span >= ZOOMS["24h"] ? null : (start + end) / 2;
      const now = Date.now() / 1000, to = center === null ? now : Math.min(now, center + this.span / 2);
      this.shown = [to - this.span, to];
      this.draw();
    }
  }

  // A finger's drag: the moment under the playhead moves the other way, as a map does.
  draggedMoment(down, x, track) {
    const [start, end] = down.shown;
    const moved = (x - down.x) / track.getBoundingClientRect().width * (end - start);
    return Math.min(Date.now() / 1000, down.moment - moved);
  }

  // A tap on a gap: its reason under the controls (a mouse reads it on hover).
  tellGap(moment) {
    const gap = this.listing.gaps.find((g) => Date.parse(g.from) / 1000 <= moment && moment <= Date.parse(g.to) / 1000);
    if (gap) this.playback.note(`${gap.reason} (${shownTime(Date.parse(gap.from) / 1000)} – ${shownTime(Date.parse(gap.to) / 1000)})`);
  }

  wire() {
    const panel = this.tile.querySelector(".footage");
    panel.addEventListener("click", (event) => event.stopPropagation());  // not the tile's zoom toggle
    const track = this.bar.querySelector(".track");
    const fraction = (x) => {
      const box = track.getBoundingClientRect();
      return Math.min(1, Math.max(0, (x - box.left) / box.width));
    };
    // A mouse: click plays from there, a drag selects a range. Fingers: a tap plays from there
    // (and tells a gap's reason, which a mouse gets on hover), a drag moves the moment as a map
    // moves, two fingers pinch the span.
    const fingers = new Map();
    let down = null, pinch = null;
    track.addEventListener("pointerdown", (event) => {
      track.setPointerCapture(event.pointerId);
      if (event.pointerType === "touch") {
        fingers.set(event.pointerId, event.clientX);
        if (fingers.size === 2) {
          const [a, b] = [...fingers.values()];
          pinch = { distance: Math.max(8, Math.abs(a - b)), span: this.span };
          down = null;
        } else if (fingers.size === 1) {
          down = { x: event.clientX, at: this.at(fraction(event.clientX)), touch: true,
                   moment: this.playback.time ?? Date.now() / 1000, shown: this.shown || this.range() };
        }
        return;
      }
      down = { x: event.clientX, at: this.at(fraction(event.clientX)), touch: false };
    });
    track.addEventListener("pointermove", (event) => {
      if (fingers.has(event.pointerId)) fingers.set(event.pointerId, event.clientX);
      if (pinch && fingers.size === 2) {
        const [a, b] = [...fingers.values()];
        this.zoomTo(pinch.span * pinch.distance / Math.max(8, Math.abs(a - b)));
        return;
      }
      if (!down || Math.abs(event.clientX - down.x) < 4) return;
      if (down.touch) {
        this.dragged = this.draggedMoment(down, event.clientX, track);
        this.draw();
        return;
      }
      const here = this.at(fraction(event.clientX));
      this.selection = [Math.min(down.at, here), Math.max(down.at, here)];
      this.draw();
    });
    const up = (event, cancelled) => {
      fingers.delete(event.pointerId);
      if (pinch) {
        if (fingers.size === 0) pinch = null;
        this.refresh();
        return;
      }
      if (!down || cancelled) {
        down = null;
        this.dragged = null;
        return;
      }
      const dragged = Math.abs(event.clientX - down.x) >= 4;
      let moment;
      if (down.touch) {
        moment = dragged ? this.draggedMoment(down, event.clientX, track) : this.at(fraction(event.clientX));
        if (!dragged) this.tellGap(moment);
      } else {
        if (!dragged) this.selection = null;
        moment = dragged ? this.selection[0] : this.at(fraction(event.clientX));
      }
      down = null;
      this.dragged = null;
      this.playback.playAt(moment).then(() => this.refresh());
    };
    track.addEventListener("pointerup", (event) => up(event, false));
    track.addEventListener("pointercancel", (event) => up(event, true));
    for (const seconds of Object.values(ZOOMS)) {
      panel.querySelector(`button[data-zoom="${Object.keys(ZOOMS).find((k) => ZOOMS[k] === seconds)}"]`)
        .addEventListener("click", () => {
          this.zoomTo(seconds);
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
