// The reading page: two linked Niivue viewers (T1 | T2 fat-sat/STIR) and the structured form with autosave.
"use strict";
(() => {
  const t0 = performance.now();
  const root = document.querySelector(".read");
  const readId = root.dataset.readId;
  const timing = window.nmTiming = {start: t0, downloaded: [], loaded: [], firstRender: null};
  const $ = s => document.querySelector(s);
  const PAIR_PREFERENCE = [["t1"], ["t2fs", "stir", "dixon_water", "other"]];

  function pickSeries(series) {
    const images = series.filter(s => s.kind === "image");
    const chosen = PAIR_PREFERENCE.map(roles => roles.map(r => images.find(s => s.role === r)).find(Boolean));
    const rest = images.filter(s => !chosen.includes(s));
    return chosen.map(s => s || rest.shift()).filter(Boolean);
  }

  // Label LUT: muscles (20-39) and roots (40-59) coloured, other tissue codes transparent.
  function labelLut(names) {
    const R = [], G = [], B = [], A = [], I = [], labels = [];
    for (let code = 0; code < 60; code++) {
      const graded = code >= 20, hue = code >= 40 ? 50 + (code % 10) * 4 : (code - 20) * 37 % 360;
      const [r, g, b] = hsl(hue, code >= 40 ? 1 : 0.7, code >= 40 ? 0.55 : 0.5);
      R.push(r); G.push(g); B.push(b); A.push(graded ? 255 : 0); I.push(code);
      labels.push(names[code] || "");
    }
    return {R, G, B, A, I, labels};
  }

  function hsl(h, s, l) {
    const k = n => (n + h / 30) % 12, a = s * Math.min(l, 1 - l);
    return [0, 8, 4].map(n => Math.round(255 * (l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1)))));
  }

  async function download(url) {
    const res = await fetch(url, {credentials: "same-origin"});
    if (!res.ok) throw new Error(`${res.status} loading an image`);
    const buffer = await res.arrayBuffer();
    timing.downloaded.push(performance.now() - t0);
    return buffer;
  }

  async function openViewer(i, image, labels, names, total, buffers) {
    // 2D slices only (no volume-rendering tile), radiological convention (patient right on screen left).
    // skipGradientTexture (local Niivue patch, see vendor/NIIVUE_VERSION): no blur + Sobel pass over the whole
    // volume, which only 3D rendering uses (seconds under a software renderer).
    const nv = new niivue.Niivue({backColor: [0, 0, 0, 1], crosshairColor: [1, 0.8, 0, 1], isColorbar: false,
                                  show3Dcrosshair: false, dragAndDropEnabled: false, isRadiologicalConvention: true,
                                  sliceType: niivue.SLICE_TYPE.AXIAL, multiplanarShowRender: niivue.SHOW_RENDER.NEVER,
                                  skipGradientTexture: true});
    await nv.attachToCanvas($(`#gl${i}`));
    let shown = false;
    nv.onImageLoaded = () => {  // first volume (the image) of this viewer; the label overlay follows
      if (shown) return;
      shown = true;
      timing.loaded.push(performance.now() - t0);
      if (timing.loaded.length === total) {
        timing.firstRender = performance.now() - t0;
        $("#viewer-status").textContent = `images shown in ${(timing.firstRender / 1000).toFixed(2)} s`;
      }
    };
    $(`#cap-${i}`).textContent = image.role.toUpperCase() + " · " + image.shape.join("×");
    const name = `${image.role}.nii`;  // display copies are uncompressed
    await nv.addVolumeFromUrl({url: name, name, buffer: await buffers.get(image.id)});
    if (labels) {
      const buffer = (await buffers.get(labels.id)).slice(0);  // each viewer owns its copy
      await nv.addVolumeFromUrl({url: "labels.nii", name: "labels.nii", buffer, opacity: 0});
      nv.volumes[1].setColormapLabel(labelLut(names));
      nv.updateGLVolume();
    }
    bindWindowLevel(nv, i);
    return nv;
  }

  async function startViewers(read) {
    const pair = pickSeries(read.series);
    const labels = read.series.find(s => s.kind === "labels");
    // Download every volume once, while WebGL starts; Niivue gets the bytes, not the URL. The viewers open one
    // after the other: both WebGL contexts share one GPU thread, and the first image shows sooner.
    const buffers = new Map([...pair, labels].filter(Boolean).map(s => [s.id, download(s.url)]));
    const viewers = [];
    for (const [i, image] of pair.entries()) viewers.push(await openViewer(i, image, labels, read.label_names, pair.length, buffers));
    window.nmViewers = viewers;  // for the browser test and the load benchmark (GPU sync after first render)
    if (viewers.length === 2) {
      viewers[0].broadcastTo([viewers[1]], {"2d": true, "3d": true});
      viewers[1].broadcastTo([viewers[0]], {"2d": true, "3d": true});
    }
    const setType = () => viewers.forEach(nv => nv.setSliceType(
      {axial: nv.sliceTypeAxial, coronal: nv.sliceTypeCoronal, sagittal: nv.sliceTypeSagittal,
       multiplanar: nv.sliceTypeMultiplanar}[$("#slice-type").value]));
    $("#slice-type").onchange = setType;
    setType();
    const toggle = $("#overlay-toggle");
    toggle.disabled = !labels;
    toggle.onchange = () => viewers.forEach(nv => {
      if (nv.volumes.length > 1) nv.setOpacity(1, toggle.checked ? 0.6 : 0);
    });
  }

  function bindWindowLevel(nv, i) {
    const vol = nv.volumes[0], lo = $(`#lo-${i}`), hi = $(`#hi-${i}`);
    const min = vol.robust_min ?? vol.global_min, max = vol.robust_max ?? vol.global_max;
    const update = () => {
      vol.cal_min = min + (max - min) * Math.min(+lo.value, +hi.value - 1) / 100;
      vol.cal_max = min + (max - min) * Math.max(+hi.value, +lo.value + 1) / 100;
      nv.updateGLVolume();
    };
    lo.oninput = hi.oninput = update;
  }

  // ---------------------------------------------------------------- structured form with autosave
  const pending = new Map();
  let saveTimer = null, locked = false;

  function status(text) { $("#save-status").textContent = text; }

  function queue(item, scale, grade) {
    pending.set(`${item}|${scale}`, {item, scale, grade});
    status("unsaved changes…");
    clearTimeout(saveTimer);
    saveTimer = setTimeout(flush, 400);
  }

  async function flush(extra = {}) {
    clearTimeout(saveTimer);
    const grades = [...pending.values()];
    pending.clear();
    if (!grades.length && extra.comment === undefined) return;
    status("saving…");
    try {
      const r = await nm.api("PUT", `/api/reads/${readId}`, {grades, ...extra});
      status(`saved · ${r.n_graded} graded`);
    } catch (err) {
      grades.forEach(g => pending.has(`${g.item}|${g.scale}`) || pending.set(`${g.item}|${g.scale}`, g));
      status("NOT saved: " + err.message);
      throw err;
    }
  }

  const pretty = s => s.replace(/_/g, " ");

  function buildForm(read) {
    const form = $("#read-form"), given = new Map(read.grades.map(g => [`${g.item}|${g.scale}`, g.grade]));
    for (const section of read.form) {
      const table = nm.el("table", {class: "grid form-table"});
      table.append(nm.el("thead", {}, nm.el("tr", {}, nm.el("th", {}, section.title),
        ...section.scales.map(s => nm.el("th", {}, s.label)))));
      const body = nm.el("tbody");
      for (const item of section.items) {
        const row = nm.el("tr", {}, nm.el("td", {}, pretty(item)));
        for (const scale of section.scales) {
          const sel = nm.el("select", {name: `${item}|${scale.name}`, "aria-label": `${pretty(item)} ${scale.label}`},
            nm.el("option", {value: ""}, "–"), ...scale.choices.map((c, g) => nm.el("option", {value: g}, `${g} ${c}`)));
          const v = given.get(`${item}|${scale.name}`);
          sel.value = v === undefined ? "" : String(v);
          sel.onchange = () => queue(item, scale.name, sel.value === "" ? null : +sel.value);
          row.append(nm.el("td", {}, sel));
        }
        body.append(row);
      }
      table.append(body);
      form.append(table);
    }
    $("#comment").value = read.comment;
    $("#comment").onchange = () => flush({comment: $("#comment").value}).catch(() => {});
    if (read.submitted_at) lock(read.submitted_at);
  }

  function lock(when) {
    locked = true;
    document.querySelectorAll("#read-form select, #comment, #submit-read").forEach(e => { e.disabled = true; });
    status(`submitted ${when.replace("T", " ").slice(0, 19)} · locked`);
  }

  $("#submit-read").onclick = async () => {
    if (locked || !confirm("Submit this read? It cannot be changed afterwards.")) return;
    try {
      await flush({comment: $("#comment").value});
      const r = await nm.api("POST", `/api/reads/${readId}/submit`);
      lock(r.submitted_at);
    } catch (err) { status("NOT submitted: " + err.message); }
  };
  window.addEventListener("beforeunload", ev => { if (pending.size) { flush().catch(() => {}); ev.preventDefault(); } });

  nm.api("GET", `/api/reads/${readId}`).then(read => {
    $("#case-label").textContent = `${read.session} · ${read.case}`;
    buildForm(read);
    return startViewers(read);
  }).catch(err => { $("#viewer-status").textContent = "Error: " + err.message; });
})();
