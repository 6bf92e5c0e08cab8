// The console's own script: copy buttons, the theme switch, the narrow-screen menu and
// confirmations. No inline script anywhere (the Content-Security-Policy forbids it).
(function () {
  "use strict";
  var root = document.documentElement;
  try {
    var saved = localStorage.getItem("moorage-theme");
    if (saved === "light" || saved === "dark") root.setAttribute("data-theme", saved);
  } catch (e) { /* storage may be off */ }

  function copyText(text, button) {
    function done() {
      // The accessible name changes with the visible text, so that one always contains
      // the other (and a screen reader hears that it worked).
      var old = button.textContent, oldLabel = button.getAttribute("aria-label");
      button.textContent = "Copied";
      if (oldLabel) button.setAttribute("aria-label", "Copied: " + text);
      button.setAttribute("data-copied", "true");
      setTimeout(function () {
        button.textContent = old;
        if (oldLabel) button.setAttribute("aria-label", oldLabel);
      }, 1500);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
    } else { fallback(text); done(); }
  }
  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text; area.setAttribute("readonly", "");
    area.className = "skip"; document.body.appendChild(area); area.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    document.body.removeChild(area);
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest("[data-copy]");
    if (target) { copyText(target.getAttribute("data-copy"), target); return; }
    if (event.target.closest("[data-theme-toggle]")) {
      var dark = root.getAttribute("data-theme") === "dark" ||
        (!root.getAttribute("data-theme") && window.matchMedia("(prefers-color-scheme: dark)").matches);
      var next = dark ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem("moorage-theme", next); } catch (e) { /* ignore */ }
      return;
    }
    var toggle = event.target.closest("[data-menu-toggle]");
    if (toggle) {
      var nav = document.getElementById(toggle.getAttribute("aria-controls"));
      var open = nav.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);
})();
