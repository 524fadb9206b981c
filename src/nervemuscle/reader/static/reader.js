// Shared helpers of the reader pages: JSON API calls with the CSRF header, worklist, admin page.
"use strict";
const nm = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  async function api(method, url, body) {
    const opts = {method, headers: {"X-CSRF-Token": csrf()}, credentials: "same-origin"};
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(url, opts);
    if (res.status === 401) { window.location = "/login"; throw new Error("login required"); }
    const data = res.headers.get("content-type")?.includes("json") ? await res.json() : await res.text();
    if (!res.ok) throw new Error(data.detail || res.statusText);
    return data;
  }

  const el = (tag, attrs = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    for (const c of children) e.append(c);
    return e;
  };

  async function renderWorklist(tbody) {
    const rows = await api("GET", "/api/worklist");
    tbody.replaceChildren(...rows.map(r => el("tr", {class: r.status.replace(" ", "-")},
      el("td", {}, r.session), el("td", {}, r.case), el("td", {}, r.status),
      el("td", {}, `${r.n_graded} / ${r.n_items}`),
      el("td", {}, el("a", {href: `/read/${r.read_id}`}, r.status === "submitted" ? "view" : "open")))));
    if (!rows.length) tbody.append(el("tr", {}, el("td", {colspan: 5}, "Nothing assigned to you yet.")));
  }

  function formJSON(form) {
    return Object.fromEntries(new FormData(form).entries());
  }

  async function initAdmin() {
    const [exams, users, sessions] = await Promise.all(
      ["/api/admin/exams", "/api/admin/users", "/api/admin/sessions"].map(u => api("GET", u)));
    document.querySelector("#exams tbody").replaceChildren(...exams.map(e => el("tr", {},
      el("td", {}, e.exam_id), el("td", {}, JSON.stringify(e.clinical)),
      el("td", {}, e.series.map(s => `${s.role} (${s.kind}) ${s.shape.join("×")}`).join(", ")),
      el("td", {}, e.has_findings ? "yes" : "no"))));
    document.querySelector("#exam-choices").replaceChildren(...exams.map(e =>
      el("label", {}, el("input", {type: "checkbox", name: "exam", value: e.exam_id, checked: ""}), " " + e.exam_id)));
    document.querySelector("#reader-choices").replaceChildren(...users.filter(u => u.role === "reader").map(u =>
      el("label", {}, el("input", {type: "checkbox", name: "reader", value: u.username, checked: ""}), " " + u.username)));
    document.querySelector("#sessions").replaceChildren(...sessions.map(s =>
      el("li", {}, el("a", {href: `/admin/sessions/${s.id}`}, s.name), s.blinded ? " (blinded)" : "")));
    const report = (sel, promise, ok) => promise.then(r => {
      document.querySelector(sel).textContent = ok(r); setTimeout(initAdmin, 0);
    }).catch(err => { document.querySelector(sel).textContent = "Error: " + err.message; });
    document.querySelector("#import-form").onsubmit = ev => {
      ev.preventDefault();
      report("#import-status", api("POST", "/api/admin/exams/import", formJSON(ev.target)),
             r => `Imported ${r.imported.length}: ${r.imported.join(", ")}`);
    };
    document.querySelector("#user-form").onsubmit = ev => {
      ev.preventDefault();
      report("#user-status", api("POST", "/api/admin/users", formJSON(ev.target)), r => `Added ${r.username}`);
    };
    document.querySelector("#session-form").onsubmit = ev => {
      ev.preventDefault();
      const f = ev.target, pick = n => [...f.querySelectorAll(`input[name=${n}]:checked`)].map(i => i.value);
      report("#session-status", api("POST", "/api/admin/sessions", {
        name: f.name.value, blinded: f.blinded.checked, exam_ids: pick("exam"), readers: pick("reader")}),
        r => `Created "${r.name}": ${r.n_exams} exams × ${r.n_readers} readers`);
    };
  }

  return {api, el, renderWorklist, initAdmin};
})();
