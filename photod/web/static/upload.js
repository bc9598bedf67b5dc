/* photod upload page: resize dropped photos in the browser (canvas, as the paper's web page did),
   POST them to /api/score and then /api/suggest, one at a time, and show the answers. */
"use strict";

(function () {
  const zone = document.getElementById("dropzone");
  const input = document.getElementById("file-input");
  const results = document.getElementById("results");
  const template = document.getElementById("result-template");
  const fullSize = document.getElementById("full-size");
  const wantSuggest = document.getElementById("want-suggest");
  const longSide = Number(zone.dataset.resize) || 1024;
  const maxBytes = Number(zone.dataset.maxBytes) || Infinity;
  const queue = [];
  let busy = false;

  // While the server loads the model (`photod serve` starts it in the background), say so and
  // poll /api/status until it is ready; uploads meanwhile simply wait for it on the server.
  const modelState = document.getElementById("model-state");
  function pollModel() {
    if (!modelState || modelState.dataset.state !== "loading") return;
    fetch("/api/status").then((r) => r.json()).then((status) => {
      const state = status.model && status.model.state;
      if (state === "loading") { setTimeout(pollModel, 1000); return; }
      modelState.dataset.state = state || "ready";
      if (state === "error") modelState.textContent = "The aesthetic model is not available: " + (status.model.error || "");
      else modelState.hidden = true;
    }).catch(() => setTimeout(pollModel, 2000));
  }
  pollModel();

  function starsText(stars) {
    if (stars === null || stars === undefined) return "";
    if (stars < 0) return "reject";
    return "★".repeat(stars) + "☆".repeat(Math.max(0, 5 - stars));
  }

  function makeCard(file) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.querySelector(".filename").textContent = file.name;
    card.dataset.status = "queued";
    results.prepend(card);
    return card;
  }

  function setState(card, status, text) {
    card.dataset.status = status;
    card.querySelector(".state").textContent = text;
  }

  function showError(card, message) {
    const el = card.querySelector(".error");
    el.textContent = message;
    el.hidden = false;
    setState(card, "error", "Failed");
  }

  /* A JPEG of at most longSide px, or the original when asked for or when this browser cannot
     decode the format (HEIC, camera RAW): the server decodes those itself. */
  async function prepare(file) {
    if (fullSize.checked) return { blob: file, name: file.name, resized: false };
    let bitmap;
    try {
      bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    } catch (err) {
      return { blob: file, name: file.name, resized: false };
    }
    const scale = Math.min(1, longSide / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    const blob = await new Promise(function (resolve) {
      canvas.toBlob(resolve, "image/jpeg", 0.92);
    });
    const base = file.name.replace(/\.[^.]*$/, "") || "photo";
    return { blob: blob, name: base + ".jpg", resized: true };
  }

  async function post(url, upload) {
    const form = new FormData();
    form.append("file", upload.blob, upload.name);
    const response = await fetch(url, { method: "POST", body: form });
    let body;
    try {
      body = await response.json();
    } catch (err) {
      throw new Error("HTTP " + response.status + " from " + url);
    }
    if (!response.ok) throw new Error(body.error || ("HTTP " + response.status));
    return body;
  }

  async function run(job) {
    const card = job.card;
    const img = card.querySelector("img.preview");
    try {
      setState(card, "preparing", fullSize.checked ? "Uploading full size…" : "Resizing…");
      const upload = await prepare(job.file);
      if (upload.blob.size > maxBytes) {
        throw new Error("file too large (" + (upload.blob.size / 1e6).toFixed(1) +
          " MB; the limit is " + (maxBytes / 1e6).toFixed(1) + " MB)");
      }
      const loaded = new Promise(function (resolve) {
        img.onload = resolve;
        img.onerror = function () {
          img.hidden = true;  // a format this browser cannot show; the score still comes
          resolve();
        };
      });
      img.src = URL.createObjectURL(upload.blob);
      card.dataset.resized = String(upload.resized);
      setState(card, "scoring", "Scoring…");
      const scored = await post("/api/score", upload);
      card.querySelector(".score").textContent = scored.score.toFixed(3);
      card.querySelector(".stars").textContent = starsText(scored.stars);
      card.querySelector(".scoreline").hidden = false;
      card.dataset.score = String(scored.score);
      setState(card, "scored", scored.width + " × " + scored.height + " " + scored.format);
      if (!wantSuggest.checked) return;
      setState(card, "suggesting", "Looking for a better crop and exposure…");
      const suggestion = await post("/api/suggest", upload);
      await loaded;
      photodShowSuggestion(card, suggestion, img.hidden ? null : img);
      setState(card, "suggested", scored.width + " × " + scored.height + " " + scored.format);
    } catch (err) {
      showError(card, err.message || String(err));
    }
  }

  async function pump() {
    if (busy) return;
    busy = true;
    while (queue.length) await run(queue.shift());
    busy = false;
  }

  function addFiles(files) {
    Array.from(files).forEach(function (file) {
      queue.push({ file: file, card: makeCard(file) });
    });
    pump();
  }

  input.addEventListener("change", function () {
    addFiles(input.files);
    input.value = "";
  });
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (e) {
      e.preventDefault();
      zone.classList.add("over");
    });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function (e) {
      e.preventDefault();
      zone.classList.remove("over");
    });
  });
  zone.addEventListener("drop", function (e) {
    if (e.dataTransfer && e.dataTransfer.files.length) addFiles(e.dataTransfer.files);
  });
})();
