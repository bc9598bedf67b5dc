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
  const before = Number(s.score_before), after = Number(s.score_after);
  const gain = after - before;
  const gainEl = box.querySelector(".gain");
  const edits = s.edits || [];
  if (s.suggested === false || (!edits.length && !s.crop && !s.exposure_ev)) {
    gainEl.textContent = "Leave it as it is: no edit scored clearly better than " +
      before.toFixed(3) + ".";
    card.dataset.suggested = "false";
    return;
  }
  gainEl.textContent = "Score " + before.toFixed(3) + " → " + after.toFixed(3) +
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
  if (s.angle) {
    const li = document.createElement("li");
    li.textContent = "straighten " + Number(s.angle).toFixed(2) + "°";
    list.appendChild(li);
  }
  if (s.exposure_ev) {
    const li = document.createElement("li");
    li.textContent = "exposure " + (s.exposure_ev > 0 ? "+" : "") + Number(s.exposure_ev).toFixed(2) + " EV";
    list.appendChild(li);
  }
  const cropEl = card.querySelector(".crop-box");
  if (s.crop && cropEl) {
    const [l, t, r, b] = s.crop;
    cropEl.style.left = (l * 100) + "%";
    cropEl.style.top = (t * 100) + "%";
    cropEl.style.width = ((r - l) * 100) + "%";
    cropEl.style.height = ((b - t) * 100) + "%";
    // photod's box is the result's size and centre; its content is the box turned by -angle.
    cropEl.style.transform = s.angle ? "rotate(" + (-s.angle) + "deg)" : "";
    cropEl.hidden = false;
  }
  if (img && img.naturalWidth) photodDrawAfter(box, s, img);
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
