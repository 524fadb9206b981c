// The reading page: two linked Niivue viewers (T1 | T2 fat-sat/STIR) and the structured form with autosave.
"use strict";
(() => {
  const root = document.querySelector(".read");
  const readId = root.dataset.readId;
  // Milliseconds since navigation start (the reader's click): images downloaded, both panes drawn (first the
  // previews, then full resolution; the GPU has finished, see whenDrawn), label overlay drawn.
  const timing = window.nmTiming = {script: performance.now(), downloaded: [], firstDrawn: null, fullDrawn: null,
                                    overlay: null};
  const $ = s => document.querySelector(s);
  const PAIR_PREFERENCE = [["t1"], ["t2fs", "stir", "dixon_water", "other"]];

  function pickSeries(series) {
    const images = series.filter(s => s.kind === "image");
    const chosen = PAIR_PREFERENCE.map(roles => roles.map(r => images.find(s => s.role === r)).find(Boolean));
    const rest = images.filter(s => !chosen.includes(s));
    return chosen.map(s => s || rest.shift()).filter(Boolean);
  }

  // Label LUT: muscles (20-39) and roots (40-49: 40 + 2 x level + side, C5..T1) coloured, other tissue codes
  // transparent. Each root level has its own vivid hue (red, green, cyan, blue, magenta: none is the amber of
  // the crosshair), both sides alike; muscles get softer hues.
  const ROOT_HUES = [0, 120, 185, 230, 300];

  function labelLut(names) {
    const R = [], G = [], B = [], A = [], I = [], labels = [];
    for (let code = 0; code < 60; code++) {
      const root = code >= 40, graded = code >= 20;
      const hue = root ? ROOT_HUES[Math.floor((code - 40) / 2) % ROOT_HUES.length] : (code - 20) * 37 % 360;
      const [r, g, b] = hsl(hue, root ? 1 : 0.7, root ? 0.55 : 0.5);
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
    timing.downloaded.push(performance.now());
    return buffer;
  }

  // niivue.umd.js loads asynchronously (read.html): it may already have run, or not yet.
  const niivueLoaded = new Promise((resolve, reject) => {
    if (window.niivue) return resolve();
    const script = $("#niivue-script");
    script.addEventListener("load", () => resolve());
    script.addEventListener("error", () => reject(new Error("the viewer library did not load")));
  });

  async function createViewer(i) {
    await niivueLoaded;
    // 2D slices only (no volume-rendering tile), radiological convention (patient right on screen left).
    const nv = new niivue.Niivue({backColor: [0, 0, 0, 1], crosshairColor: [1, 0.8, 0, 1], isColorbar: false,
                                  show3Dcrosshair: false, dragAndDropEnabled: false, isRadiologicalConvention: true,
                                  sliceType: niivue.SLICE_TYPE.AXIAL, multiplanarShowRender: niivue.SHOW_RENDER.NEVER});
    // Local Niivue patch (vendor/NIIVUE_VERSION): no blur + Sobel gradient texture, which only 3D rendering uses
    // (two 3D passes, about 2 s per 256x256x120 volume under a software renderer). Set after construction: the
    // constructor keeps only the options it knows.
    nv.opts.skipGradientTexture = true;
    await nv.attachToCanvas($(`#gl${i}`));
    return nv;
  }

  async function showImage(nv, i, image, buffer, name) {
    $(`#cap-${i}`).textContent = image.role.toUpperCase() + " · " + image.shape.join("×");
    await nv.addVolumeFromUrl({url: name, name, buffer});
    const shown = nv.volumes[0];
    shown.nmInitialWindow = [shown.cal_min, shown.cal_max];
  }

  function whenDrawn(viewers) {
    // When the GPU has finished everything queued so far in every viewer (a WebGL fence each, polled without
    // blocking): Niivue returns from loading a volume long before a software renderer has built its textures.
    return Promise.all(viewers.map(nv => new Promise(resolve => {
      nv.drawScene();
      const gl = nv.gl, fence = gl.fenceSync(gl.SYNC_GPU_COMMANDS_COMPLETE, 0);
      gl.flush();
      const poll = () => {
        if (gl.getSyncParameter(fence, gl.SYNC_STATUS) !== gl.SIGNALED) return setTimeout(poll, 5);
        gl.deleteSync(fence);
        resolve(performance.now());
      };
      poll();
    }))).then(times => Math.max(...times));
  }

  async function replaceImage(nv, buffer, name) {
    // The preview gives way to the full-resolution image: same world space, crosshair kept in mm, and a window
    // the reader has already changed carried over.
    const preview = nv.volumes[0];
    const full = await niivue.NVImage.loadFromUrl({url: name, name, buffer});
    if (preview.cal_min !== preview.nmInitialWindow[0] || preview.cal_max !== preview.nmInitialWindow[1]) {
      [full.cal_min, full.cal_max] = [preview.cal_min, preview.cal_max];
    }
    const mm = nv.frac2mm(nv.scene.crosshairPos);
    nv.volumes = [full];
    nv.setVolume(full, 0);
    nv.scene.crosshairPos = nv.mm2frac(mm);
    nv.drawScene();
  }

  const OVERLAY_OPACITY = 0.6;

  async function showOverlay(nv, buffer, names) {
    // Colours set before the layer is added, and a shown label map replaced in place: Niivue blends the layers
    // once, not twice.
    const overlay = await niivue.NVImage.loadFromUrl({url: "labels.nii", name: "labels.nii", buffer: buffer.slice(0),
                                                     opacity: OVERLAY_OPACITY});
    overlay.setColormapLabel(labelLut(names));
    if (nv.volumes.length > 1) {
      nv.volumes = [nv.volumes[0], overlay];
      nv.setVolume(overlay, 1);
    } else {
      nv.addVolume(overlay);
    }
  }

  async function startViewers(read) {
    const pair = pickSeries(read.series);
    if (!pair.length) {
      $("#viewer-status").textContent = "this exam has no image series";
      return;
    }
    const names = pair.map(image => `${image.role}.nii`);  // display copies are uncompressed
    // Large series come first as a reduced-size preview (display.preview_copy): a few MB and a fraction of the
    // GPU work, shown while the full resolution downloads (after the previews) and replaces them pane by pane.
    // Downloads run while both WebGL contexts start; Niivue gets the bytes, not the URL. The panes open one after
    // the other (both contexts share one GPU thread: the first image shows sooner).
    const first = pair.map(image => download(image.preview_url || image.url));
    const full = Promise.all(first).then(() => pair.map((image, i) => image.preview_url ? download(image.url) : first[i]));
    const viewers = await Promise.all(pair.map((_, i) => createViewer(i)));
    for (const [i, image] of pair.entries()) {
      await showImage(viewers[i], i, image, await first[i], names[i]);
      bindWindowLevel(viewers[i], i);
    }
    window.nmViewers = viewers;  // for the browser test
    timing.firstDrawn = await whenDrawn(viewers);
    const seconds = t => `${(t / 1000).toFixed(2)} s`;
    $("#viewer-status").textContent = `images shown in ${seconds(timing.firstDrawn)}`;
    if (viewers.length === 2) {
      viewers[0].broadcastTo([viewers[1]], {"2d": true, "3d": true});
      viewers[1].broadcastTo([viewers[0]], {"2d": true, "3d": true});
    }
    const setType = () => viewers.forEach(nv => nv.setSliceType(
      {axial: nv.sliceTypeAxial, coronal: nv.sliceTypeCoronal, sagittal: nv.sliceTypeSagittal,
       multiplanar: nv.sliceTypeMultiplanar}[$("#slice-type").value]));
    $("#slice-type").onchange = setType;
    setType();
    const previews = pair.map(image => Boolean(image.preview_url));
    if (previews.some(Boolean)) {
      $("#viewer-status").textContent = `preview shown in ${seconds(timing.firstDrawn)} · loading full resolution…`;
      const buffers = await full;
      for (const [i, nv] of viewers.entries()) if (previews[i]) await replaceImage(nv, await buffers[i], names[i]);
      timing.fullDrawn = await whenDrawn(viewers);
      $("#viewer-status").textContent =
        `preview shown in ${seconds(timing.firstDrawn)} · full resolution in ${seconds(timing.fullDrawn)}`;
    } else {
      timing.fullDrawn = timing.firstDrawn;
    }
    // Segmentation overlays (the exam's label maps, e.g. muscles and nerves), one at a time. Each is a layer that
    // Niivue blends with the image again whenever a volume changes (seconds per viewer in a software renderer),
    // so a label map is downloaded and added only when chosen.
    const labelSeries = read.series.filter(s => s.kind === "labels");
    const select = $("#overlay-select");
    if (!labelSeries.length) return;
    for (const s of labelSeries) select.append(nm.el("option", {value: String(s.id)}, s.role.replace(/_/g, " ")));
    const downloads = new Map();  // label series id -> its download
    let loaded = "";  // id of the label map in the viewers ("" none yet)
    select.disabled = false;
    select.onchange = async () => {
      const id = select.value;
      if (!id || id === loaded) {
        if (loaded) viewers.forEach(nv => nv.setOpacity(1, id ? OVERLAY_OPACITY : 0));
        return;
      }
      select.disabled = true;
      const before = $("#viewer-status").textContent;
      $("#viewer-status").textContent = "loading overlay…";
      try {
        const series = labelSeries.find(s => String(s.id) === id);
        if (!downloads.has(id)) downloads.set(id, download(series.url));
        const buffer = await downloads.get(id);
        for (const nv of viewers) await showOverlay(nv, buffer, read.label_names);
        loaded = id;
        timing.overlay = await whenDrawn(viewers);
        $("#viewer-status").textContent = before;
      } catch (err) {
        select.value = "";
        $("#viewer-status").textContent = "Error: " + err.message;
      } finally {
        select.disabled = false;
      }
    };
  }

  function bindWindowLevel(nv, i) {
    const lo = $(`#lo-${i}`), hi = $(`#hi-${i}`);
    lo.oninput = hi.oninput = () => {
      const vol = nv.volumes[0];  // the preview, then the full-resolution image
      const min = vol.robust_min ?? vol.global_min, max = vol.robust_max ?? vol.global_max;
      vol.cal_min = min + (max - min) * Math.min(+lo.value, +hi.value - 1) / 100;
      vol.cal_max = min + (max - min) * Math.max(+hi.value, +lo.value + 1) / 100;
      nv.updateGLVolume();
    };
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
