/* photod: draw a suggestion (crop box over the photo, exposure preview, score gain) in a card.
   Shared by the upload page and the library's detail view; plain JS, no build step. */
"use strict";

function photodFormatEdit(edit) {
  const params = edit.params || {};
  const parts = Object.keys(params).map(function (k) {
    const v = params[k];
    return k + " " + (typeof v === "number" ? (Math.round(v * 100) / 100) : JSON.stringify(v));
  });
  const gain = typeof edit.gain === "number" ? " (" + (edit.gain >= 0 ? "+" : "") + edit.gain.toFixed(3) + ")" : "";
  return edit.enhancer + (parts.length ? ": " + parts.join(", ") : "") + gain;
}

/* card: element holding .frame/.crop-box and .suggestion; img: the displayed photo (may be null). */
function photodShowSuggestion(card, s, img) {
  const box = card.querySelector(".suggestion");
  box.hidden = false;
  card.dataset.suggestion = JSON.stringify(s);  // what was drawn, for scripts and tests
  const before = Number(s.score_before), after = Number(s.score_after);
  const gain = after - before;
  const gainEl = box.querySelector(".gain");
  const edits = s.edits || [];
  // The edit-preference head ranks versions of this photo: its values are not the 1-5 score
  // shown above, only their difference means something.
  const preference = s.objective === "edit-preference";
  if (s.suggested === false || (!edits.length && !s.crop && !s.exposure_ev)) {
    gainEl.textContent = preference
      ? "Leave it as it is: no edit gained the margin (" + Number(s.margin).toFixed(2) + ")."
      : "Leave it as it is: no edit scored clearly better than " + before.toFixed(3) + ".";
    card.dataset.suggested = "false";
    return;
  }
  gainEl.textContent = preference
    ? "Preferred over the original by +" + gain.toFixed(3) + " (margin " +
      Number(s.margin).toFixed(2) + ")"
    : "Score " + before.toFixed(3) + " → " + after.toFixed(3) +
      " (" + (gain >= 0 ? "+" : "") + gain.toFixed(3) + ")";
  card.dataset.suggested = "true";
  gainEl.dataset.gain = gain.toFixed(4);
  const list = box.querySelector(".edits");
  list.textContent = "";
  edits.forEach(function (e) {
    const li = document.createElement("li");
    li.textContent = photodFormatEdit(e);
    list.appendChild(li);
  });
  // Summaries for a stored suggestion that lists no steps (older ones); steps say it otherwise.
  if (s.angle && !edits.length) {
    const li = document.createElement("li");
    li.textContent = "straighten " + Number(s.angle).toFixed(2) + "°";
    list.appendChild(li);
  }
  if (s.exposure_ev && !edits.length) {
    const li = document.createElement("li");
    li.textContent = "exposure " + (s.exposure_ev > 0 ? "+" : "") + Number(s.exposure_ev).toFixed(2) + " EV";
    list.appendChild(li);
  }
  const overlay = card.querySelector(".crop-box");
  if (s.crop && overlay && img && img.naturalWidth) photodDrawCrop(overlay, s, img);
  if (img && img.naturalWidth) photodDrawAfter(box, s, img);
}

/* The crop as photod means it, over the photo: the box's centre and size, its content turned by
   the straightening angle; everything outside is dimmed (an SVG even-odd path). */
function photodDrawCrop(overlay, s, img) {
  const w = img.naturalWidth, h = img.naturalHeight;
  const [l, t, r, b] = s.crop;
  const cx = (l + r) / 2 * w, cy = (t + b) / 2 * h;
  const hw = (r - l) / 2 * w, hh = (b - t) / 2 * h;
  const a = (s.angle || 0) * Math.PI / 180, cos = Math.cos(a), sin = Math.sin(a);
  const corners = [[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]].map(function (u) {
    return [cx + cos * u[0] + sin * u[1], cy - sin * u[0] + cos * u[1]];
  });
  const ring = "M" + corners.map(function (p) { return p[0].toFixed(1) + " " + p[1].toFixed(1); })
    .join(" L") + " Z";
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 " + w + " " + h);
  svg.setAttribute("preserveAspectRatio", "none");
  const dim = document.createElementNS(ns, "path");
  dim.setAttribute("d", "M0 0 H" + w + " V" + h + " H0 Z " + ring);
  dim.setAttribute("fill-rule", "evenodd");
  dim.setAttribute("class", "dim");
  const edge = document.createElementNS(ns, "path");
  edge.setAttribute("d", ring);
  edge.setAttribute("class", "edge");
  edge.setAttribute("vector-effect", "non-scaling-stroke");
  svg.append(dim, edge);
  overlay.textContent = "";
  overlay.appendChild(svg);
  overlay.hidden = false;
}

/* The suggested crop, straightening and exposure applied to the on-screen image: a preview drawn
   on a canvas, never a file. Geometry as photod.enhancers.geometry.extract: output pixel u samples
   the input at centre + R(angle) (u - size/2). */
function photodDrawAfter(box, s, img) {
  const crop = s.crop || [0, 0, 1, 1];
  const w = img.naturalWidth, h = img.naturalHeight;
  const cw = (crop[2] - crop[0]) * w, ch = (crop[3] - crop[1]) * h;
  if (cw < 1 || ch < 1) return;
  const cx = (crop[0] + crop[2]) / 2 * w, cy = (crop[1] + crop[3]) / 2 * h;
  const scale = Math.min(1, 480 / Math.max(cw, ch));
  const canvas = box.querySelector(".after-canvas");
  canvas.width = Math.round(cw * scale);
  canvas.height = Math.round(ch * scale);
  const ctx = canvas.getContext("2d");
  // brightness() scales encoded values; 2^EV is a fair preview of an exposure change.
  ctx.filter = s.exposure_ev ? "brightness(" + Math.pow(2, s.exposure_ev).toFixed(3) + ")" : "none";
  ctx.translate(canvas.width / 2, canvas.height / 2);
  ctx.scale(scale, scale);
  if (s.angle) ctx.rotate(s.angle * Math.PI / 180);
  ctx.drawImage(img, -cx, -cy);
  box.querySelector(".after").hidden = false;
}
