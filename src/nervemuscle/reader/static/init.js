// Page start-up from a file, not inline script: the Content-Security-Policy runs scripts from /static only.
(function () {
  "use strict";
  const page = document.currentScript.dataset.init;
  if (page === "admin") nm.initAdmin();
  if (page === "worklist") nm.renderWorklist(document.querySelector("#worklist tbody"));
})();
