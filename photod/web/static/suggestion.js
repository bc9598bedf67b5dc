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
  if (!edits.length && !s.crop && !s.exposure_ev) {
    gainEl.textContent = "No change found that scores better (" + before.toFixed(3) + ").";
  } else {
    gainEl.textContent = "Score " + before.toFixed(3) + " → " + after.toFixed(3) +
      " (" + (gain >= 0 ? "+" : "") + gain.toFixed(3) + ")";
  }
  gainEl.dataset.gain = gain.toFixed(4);
  const list = box.querySelector(".edits");
  list.textContent = "";
  edits.forEach(function (e) {
    const li = document.createElement("li");
    li.textContent = photodFormatEdit(e);
    list.appendChild(li);
  });
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
    cropEl.hidden = false;
  }
  if (img && img.naturalWidth) photodDrawAfter(box, s, img);
}

/* The suggested crop and exposure applied to the on-screen image: a preview, never a file. */
function photodDrawAfter(box, s, img) {
  const crop = s.crop || [0, 0, 1, 1];
  const sx = crop[0] * img.naturalWidth, sy = crop[1] * img.naturalHeight;
  const sw = (crop[2] - crop[0]) * img.naturalWidth, sh = (crop[3] - crop[1]) * img.naturalHeight;
  if (sw < 1 || sh < 1) return;
  const scale = Math.min(1, 480 / Math.max(sw, sh));
  const canvas = box.querySelector(".after-canvas");
  canvas.width = Math.round(sw * scale);
  canvas.height = Math.round(sh * scale);
  const ctx = canvas.getContext("2d");
  // brightness() scales encoded values; 2^EV is a fair preview of an exposure change.
  ctx.filter = s.exposure_ev ? "brightness(" + Math.pow(2, s.exposure_ev).toFixed(3) + ")" : "none";
  ctx.drawImage(img, sx, sy, sw, sh, 0, 0, canvas.width, canvas.height);
  box.querySelector(".after").hidden = false;
}
